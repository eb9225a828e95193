//! Token keys and the AEAD that seals tokens.
//!
//! Why XChaCha20-Poly1305: nonces are random (no counter can be shared across
//! Envoy workers and proxies), and its 192-bit nonce makes random nonces safe
//! at any realistic token volume, where a 96-bit nonce (ChaCha20-Poly1305,
//! AES-GCM) starts to risk collisions after ~2^32 tokens per key. It is fast
//! and constant-time in plain software, which is all wasm32 has (no AES-NI,
//! so AES-GCM-SIV would be slower there).

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key as AeadKey, XChaCha20Poly1305, XNonce};

/// Length of the random nonce stored in every token.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag appended to every token.
pub const TAG_LEN: usize = 16;
/// Longest key id accepted.
pub const MAX_KEY_ID: usize = 32;

/// A key id: 1-32 bytes of `[A-Za-z0-9._-]`, stored in clear in the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId(Box<[u8]>);

impl KeyId {
    /// Validates a key id.
    pub fn new(id: &str) -> Option<Self> {
        let ok = !id.is_empty()
            && id.len() <= MAX_KEY_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        ok.then(|| Self(id.as_bytes().into()))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One named key.
pub struct Key {
    id: KeyId,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Builds a key from its id and 32 secret bytes.
    pub fn new(id: KeyId, secret: &[u8; 32]) -> Self {
        Self {
            id,
            cipher: XChaCha20Poly1305::new(AeadKey::from_slice(secret)),
        }
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// Encrypts `buf` in place and appends the tag.
    pub(crate) fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) -> bool {
        self.cipher
            .encrypt_in_place(XNonce::from_slice(nonce), aad, buf)
            .is_ok()
    }

    /// Checks the tag and decrypts `buf` (ciphertext + tag) in place.
    pub(crate) fn open(&self, nonce: &[u8], aad: &[u8], buf: &mut Vec<u8>) -> bool {
        if nonce.len() != NONCE_LEN {
            return false;
        }
        self.cipher
            .decrypt_in_place(XNonce::from_slice(nonce), aad, buf)
            .is_ok()
    }
}

/// The configured keys: the first seals, every key opens.
#[derive(Debug)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// Builds a keyring; `keys` must not be empty (config validation ensures it).
    pub fn new(keys: Vec<Key>) -> Self {
        Self { keys }
    }

    /// The sealing key (the first one).
    pub fn sealing(&self) -> Option<&Key> {
        self.keys.first()
    }

    /// Whether `key` is the sealing key (the first of the ring).
    pub fn is_sealing(&self, key: &Key) -> bool {
        self.keys
            .first()
            .is_some_and(|first| std::ptr::eq(first, key))
    }

    /// The key with this id, if configured.
    pub fn find(&self, id: &[u8]) -> Option<&Key> {
        self.keys.iter().find(|k| k.id.as_bytes() == id)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
