//! Who sees which stream: one stream by its owner and id (another user's is "not found"), a
//! user's streams, every user's (admin), and playback tokens renewed on the way.

use super::{unix, Stopped, StreamError, StreamSnapshot, Streams};
use crate::auth::now_secs;

impl Streams {
    /// A stream of `user` by id (another user's stream is "not found").
    pub fn snapshot(&self, user: &str, id: &str) -> Result<StreamSnapshot, StreamError> {
        let entries = self.entries.lock().expect("streams lock");
        let entry = entries
            .get(id)
            .filter(|e| e.record.user == user)
            .ok_or(StreamError::NotFound)?;
        let phase = entry.phase.borrow().clone();
        Ok(StreamSnapshot {
            record: entry.record.clone(),
            phase,
            stats: entry.stats.snapshot(),
            stalled: entry.stats.is_stalled(),
        })
    }

    /// The user's streams, oldest first; expired tokens are renewed so URLs work.
    pub async fn list(&self, user: &str) -> Vec<StreamSnapshot> {
        let ids: Vec<String> = {
            let entries = self.entries.lock().expect("streams lock");
            let mut mine: Vec<_> = entries.values().filter(|e| e.record.user == user).collect();
            mine.sort_by(|a, b| {
                (a.record.created_at, &a.record.id).cmp(&(b.record.created_at, &b.record.id))
            });
            mine.iter().map(|e| e.record.id.clone()).collect()
        };
        let mut found = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Ok(snapshot) = self.get(user, id).await {
                found.push(snapshot);
            }
        }
        found
    }

    /// Every user's streams, oldest first (admin).
    pub async fn list_all(&self) -> Vec<StreamSnapshot> {
        let owners: Vec<(String, String)> = {
            let entries = self.entries.lock().expect("streams lock");
            let mut all: Vec<_> = entries.values().collect();
            all.sort_by(|a, b| {
                (a.record.created_at, &a.record.id).cmp(&(b.record.created_at, &b.record.id))
            });
            all.iter()
                .map(|e| (e.record.user.clone(), e.record.id.clone()))
                .collect()
        };
        let mut found = Vec::with_capacity(owners.len());
        for (user, id) in &owners {
            if let Ok(snapshot) = self.get(user, id).await {
                found.push(snapshot);
            }
        }
        found
    }

    /// Deletes any user's stream (admin); returns its owner.
    pub async fn delete_any(&self, id: &str) -> Result<String, StreamError> {
        let owner = {
            let entries = self.entries.lock().expect("streams lock");
            entries.get(id).map(|e| e.record.user.clone())
        };
        let owner = owner.ok_or(StreamError::NotFound)?;
        self.forget(id, Stopped::ByAdmin).await;
        Ok(owner)
    }

    /// One stream, with its token renewed if it has expired.
    pub async fn get(&self, user: &str, id: &str) -> Result<StreamSnapshot, StreamError> {
        let snapshot = self.snapshot(user, id)?;
        if snapshot.record.token_expires_at > now_secs() {
            return Ok(snapshot);
        }
        self.refresh(user, id).await
    }

    /// A new playback token for the stream (older ones stay valid until they expire).
    pub async fn refresh(&self, user: &str, id: &str) -> Result<StreamSnapshot, StreamError> {
        let issued = self.keys.issue(user, id).map_err(|_| StreamError::Token)?;
        let record = {
            let mut entries = self.entries.lock().expect("streams lock");
            let entry = entries
                .get_mut(id)
                .filter(|e| e.record.user == user)
                .ok_or(StreamError::NotFound)?;
            entry.record.token = issued.token;
            entry.record.token_expires_at = unix(issued.expires_at);
            entry.record.clone()
        };
        self.store.update(&record).await?;
        self.snapshot(user, id)
    }
}
