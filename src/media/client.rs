//! Who is going to play: from `?client=` when given, else guessed from the User-Agent.
//! Browsers (Chromium, Firefox) and Safari have codec rules; mpv and VLC play anything.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    Browser,
    Safari,
    Mpv,
    Vlc,
}

impl Client {
    /// `?client=` values.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "browser" | "chrome" | "chromium" | "firefox" => Some(Client::Browser),
            "safari" => Some(Client::Safari),
            "mpv" => Some(Client::Mpv),
            "vlc" => Some(Client::Vlc),
            _ => None,
        }
    }

    /// A guess from the User-Agent; unknown agents get browser rules (the strictest that
    /// still plays most files).
    pub fn from_user_agent(agent: &str) -> Self {
        let has = |needle: &str| agent.contains(needle);
        if has("VLC") || has("LibVLC") {
            Client::Vlc
        } else if has("mpv") || has("Lavf") {
            Client::Mpv
        } else if has("Safari") && !has("Chrome") && !has("Chromium") && !has("Firefox") {
            Client::Safari
        } else {
            Client::Browser
        }
    }

    /// Plays every container and codec itself.
    pub fn plays_anything(self) -> bool {
        matches!(self, Client::Mpv | Client::Vlc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_map_to_clients() {
        let cases = [
            ("VLC/3.0.18 LibVLC/3.0.18", Client::Vlc),
            ("libmpv", Client::Mpv),
            ("mpv 0.35.1", Client::Mpv),
            ("Lavf/59.27.100", Client::Mpv),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15", Client::Safari),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", Client::Browser),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", Client::Browser),
            ("", Client::Browser),
        ];
        for (agent, want) in cases {
            assert_eq!(Client::from_user_agent(agent), want, "{agent}");
        }
        assert_eq!(Client::from_name("Safari"), Some(Client::Safari));
        assert_eq!(Client::from_name("roku"), None);
    }
}
