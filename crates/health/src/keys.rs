//! API keys: the configured ones plus those created at runtime, matched in constant
//! time.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use spyder_config::{ApiKey, KeySource, Scope};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Length of a generated key's random part, in bytes (64 hex digits).
const GENERATED_KEY_BYTES: usize = 32;
/// Characters of a key shown as its `prefix`.
const PREFIX_CHARS: usize = 12;

/// The keys the API accepts: the merged `api.keys` + `SPYDER_API_KEYS` at start, then
/// `POST`/`DELETE /api/v1/keys`. Cheap to clone; all clones share the set. Runtime
/// changes live in memory only.
#[derive(Clone, Default)]
pub struct KeyStore {
    keys: Arc<RwLock<Vec<ApiKey>>>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.list())
            .finish()
    }
}

/// Who a presented key belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIdentity {
    /// The key's name (what logs show).
    pub name: String,
    /// What it may do.
    pub scope: Scope,
}

/// A key as `GET /api/v1/keys` lists it: never the secret, only its first characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Unique name.
    pub name: String,
    /// `read`, `write` or `admin`.
    pub scope: Scope,
    /// `config`, `env` or `api`.
    #[serde(serialize_with = "serialize_source")]
    pub source: KeySource,
    /// The key's first 12 characters (never more than half of the key).
    pub prefix: String,
}

fn serialize_source<S: serde::Serializer>(source: &KeySource, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(source.as_str())
}

/// Why a key could not be created.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyStoreError {
    /// The name is empty.
    #[error("name must not be empty")]
    EmptyName,
    /// A key with this name exists.
    #[error("a key named {0:?} already exists")]
    NameTaken(String),
}

impl KeyStore {
    /// A store holding `keys` (their `source` as configured).
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self {
            keys: Arc::new(RwLock::new(keys)),
        }
    }

    /// Whether no key exists at all (the API then answers `401 NO_API_KEYS`).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The key matching `presented`, if any. Every key is compared in constant time
    /// and all of them are compared, whichever matches.
    pub fn authenticate(&self, presented: &str) -> Option<KeyIdentity> {
        let keys = self.read();
        let presented = presented.as_bytes();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, key) in keys.iter().enumerate() {
            let matches = key.key.as_bytes().ct_eq(presented);
            index = u64::conditional_select(&index, &(i as u64), matches);
            found |= matches;
        }
        if !bool::from(found) {
            return None;
        }
        let key = keys.get(usize::try_from(index).ok()?)?;
        Some(KeyIdentity {
            name: key.name.clone(),
            scope: key.scope,
        })
    }

    /// Creates a key `spyder_<64 hex>` from 32 random bytes, named `name`, with source
    /// `api`. Returns it; this is the only time its secret is shown.
    pub fn create(&self, name: &str, scope: Scope) -> Result<ApiKey, KeyStoreError> {
        if name.is_empty() {
            return Err(KeyStoreError::EmptyName);
        }
        let mut keys = self.write();
        if keys.iter().any(|k| k.name == name) {
            return Err(KeyStoreError::NameTaken(name.to_owned()));
        }
        let secret: [u8; GENERATED_KEY_BYTES] = rand::random();
        let key = ApiKey {
            key: format!("spyder_{}", hex::encode(secret)),
            name: name.to_owned(),
            scope,
            source: KeySource::Api,
        };
        keys.push(key.clone());
        Ok(key)
    }

    /// Removes the key named `name`, whatever its source, until the next restart.
    /// Returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        let mut keys = self.write();
        let before = keys.len();
        keys.retain(|k| k.name != name);
        keys.len() != before
    }

    /// Every key, without secrets, in the order they were added.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.read()
            .iter()
            .map(|k| KeyInfo {
                name: k.name.clone(),
                scope: k.scope,
                source: k.source,
                prefix: prefix_of(&k.key),
            })
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<ApiKey>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<ApiKey>> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The first 12 characters of `key`, but never more than half of it, so a short
/// configured key is not revealed whole.
fn prefix_of(key: &str) -> String {
    let shown = PREFIX_CHARS.min(key.chars().count() / 2);
    key.chars().take(shown).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str, name: &str, scope: Scope) -> ApiKey {
        ApiKey {
            key: secret.to_owned(),
            name: name.to_owned(),
            scope,
            source: KeySource::Config,
        }
    }

    #[test]
    fn authenticates_any_position_and_rejects_near_misses() {
        let store = KeyStore::new(vec![
            key("aaaaaaaaaaaa", "first", Scope::Read),
            key("bbbbbbbbbbbb", "second", Scope::Admin),
        ]);
        assert_eq!(
            store.authenticate("bbbbbbbbbbbb").map(|k| k.name),
            Some("second".to_owned())
        );
        assert_eq!(
            store.authenticate("aaaaaaaaaaaa").map(|k| k.scope),
            Some(Scope::Read)
        );
        assert_eq!(store.authenticate("bbbbbbbbbbb"), None);
        assert_eq!(store.authenticate("bbbbbbbbbbbbb"), None);
        assert_eq!(store.authenticate(""), None);
    }

    #[test]
    fn created_keys_have_the_documented_form() {
        let store = KeyStore::default();
        assert!(store.is_empty());
        let created = store.create("ci", Scope::Write).expect("created");
        assert_eq!(created.key.len(), "spyder_".len() + 64);
        assert!(created.key.starts_with("spyder_"));
        assert!(created.key[7..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(created.source, KeySource::Api);
        assert_eq!(
            store.create("ci", Scope::Read),
            Err(KeyStoreError::NameTaken("ci".to_owned()))
        );
        assert_eq!(store.create("", Scope::Read), Err(KeyStoreError::EmptyName));
        let listed = store.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].prefix, created.key[..12]);
        assert!(store.remove("ci"));
        assert!(!store.remove("ci"));
    }

    #[test]
    fn prefix_never_shows_more_than_half_a_short_key() {
        assert_eq!(prefix_of("12345678"), "1234");
        assert_eq!(prefix_of("spyder_0123456789abcdef0"), "spyder_01234");
        assert_eq!(prefix_of("spyder_0123456789abcdef"), "spyder_0123");
    }
}
