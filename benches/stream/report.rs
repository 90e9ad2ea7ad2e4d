//! The report: table rows with their verdicts, the printed table, and the number formats
//! shared by the per-run lines. It measures nothing.

use std::time::Duration;

/// A table line: figure, Magnetar's figure, baseline, goal, verdict.
pub type Row = [String; 5];

/// Builds a [`Row`]; the verdict from `met` (`None`: no verdict, or `ERROR` when `ours` is).
pub fn row(figure: &str, ours: &str, base: &str, goal: &str, met: Option<bool>) -> Row {
    let verdict = match met {
        Some(true) => "ok",
        Some(false) => "MISS",
        None if ours == "ERROR" => "ERROR",
        None if figure == "figure" => "verdict",
        None => "-",
    };
    [figure, ours, base, goal, verdict].map(String::from)
}

/// Prints the heading and `rows` in aligned columns.
pub fn print_table(rows: &[Row]) {
    let head = row("figure", "magnetar", "baseline", "goal", None);
    for [figure, ours, base, goal, verdict] in std::iter::once(&head).chain(rows) {
        println!("{figure:<46} {ours:<40} {base:<44} {goal:<10} {verdict}");
    }
}

pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// "median / max" in milliseconds.
pub fn med_max(v: &[Duration]) -> String {
    let max = v.iter().max().copied().unwrap_or_default();
    format!("{} / {}", ms(median(v)), ms(max))
}

pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
