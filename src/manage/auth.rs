//! Command authentication: an ed25519 signature by an operator key over the exact payload bytes,
//! an issue time and expiry, and a sequence number above the persisted high-water mark of that
//! key, so that a captured command cannot be replayed — not even after a restart.
//!
//! On the wire a command is `{"payload": "<JSON text>", "signature": "<base64>"}`; the payload
//! text is signed as it is, so no canonical JSON form is needed. The payload names the device and
//! the command, so a signed command cannot be redirected to another device or topic.

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A command as an operator signs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Correlation id, echoed in the result.
    pub id: String,
    /// The device it is for.
    pub device: String,
    /// Its name; must match the topic it arrives on.
    pub command: String,
    /// Unix seconds when it was signed.
    pub issued_at: u64,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Strictly increasing per operator key.
    pub seq: u64,
    /// Arguments, by command.
    #[serde(default)]
    pub args: serde_json::Value,
}

/// The signed form sent over MQTT.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The command's JSON text, exactly as signed.
    pub payload: String,
    /// base64 ed25519 signature of `payload`'s bytes.
    pub signature: String,
}

impl Envelope {
    /// Signs `command` with `key`.
    pub fn sign(command: &Command, key: &SigningKey) -> Envelope {
        // Strings, numbers and a JSON value: serializing cannot fail.
        let payload = serde_json::to_string(command).unwrap_or_default();
        let signature = key.sign(payload.as_bytes());
        Envelope {
            payload,
            signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        }
    }
}

/// Why a command was refused; `code()` is the machine-readable reason in the result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Larger than `remote.max_command_bytes`.
    #[error("payload is {bytes} bytes; the limit is {max}")]
    TooLarge { bytes: usize, max: usize },
    /// Not JSON, or not the envelope's shape.
    #[error("malformed command: {0}")]
    Malformed(String),
    /// No signature.
    #[error("command is not signed; sign it with an operator key (edgeinfer cmd --key)")]
    Unsigned,
    /// The device has no operator key.
    #[error("no operator keys are configured (remote.operator_keys); commands are refused")]
    NoKeys,
    /// No operator key verifies the signature.
    #[error("signature does not verify with any operator key")]
    BadSignature,
    /// Signed for another device.
    #[error("command is for device \"{0}\"")]
    WrongDevice(String),
    /// Signed as another command than the topic says.
    #[error("payload is a \"{signed}\" command but arrived on the \"{topic}\" topic")]
    WrongCommand { signed: String, topic: String },
    /// Past its expiry.
    #[error("command expired at {expires_at} (device time {now})")]
    Expired { expires_at: u64, now: u64 },
    /// Issued in the future beyond the tolerated skew.
    #[error("command is issued at {issued_at}, in the future (device time {now})")]
    NotYetValid { issued_at: u64, now: u64 },
    /// Valid for longer than allowed.
    #[error("command is valid for {lifetime} s; at most {max} s are accepted")]
    LifetimeTooLong { lifetime: u64, max: u64 },
    /// Sequence number at or below the high-water mark.
    #[error("replayed or out-of-order command: seq {seq} is not above {high_water}")]
    Replayed { seq: u64, high_water: u64 },
    /// The high-water mark could not be stored, so the command is not run.
    #[error("cannot persist the replay high-water mark: {0}")]
    Storage(String),
}

impl Rejection {
    /// Short, stable name of the reason.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::TooLarge { .. } => "too_large",
            Rejection::Malformed(_) => "malformed",
            Rejection::Unsigned => "unsigned",
            Rejection::NoKeys => "no_operator_keys",
            Rejection::BadSignature => "bad_signature",
            Rejection::WrongDevice(_) => "wrong_device",
            Rejection::WrongCommand { .. } => "wrong_command",
            Rejection::Expired { .. } => "expired",
            Rejection::NotYetValid { .. } => "not_yet_valid",
            Rejection::LifetimeTooLong { .. } => "lifetime_too_long",
            Rejection::Replayed { .. } => "replayed",
            Rejection::Storage(_) => "storage",
        }
    }
}

/// Limits a command is checked against.
#[derive(Debug, Clone)]
pub struct Policy {
    /// This device.
    pub device: String,
    /// Operator keys.
    pub keys: Vec<VerifyingKey>,
    /// Largest payload.
    pub max_bytes: usize,
    /// Longest `expires_at - issued_at`.
    pub max_lifetime_secs: u64,
    /// How far in the future `issued_at` may be.
    pub clock_skew_secs: u64,
}

/// Checks commands and keeps the per-key high-water marks on disk.
pub struct Authenticator {
    policy: Policy,
    marks: ReplayMarks,
}

impl Authenticator {
    /// An authenticator whose high-water marks live in `state_file`.
    pub fn open(policy: Policy, state_file: PathBuf) -> Result<Self, std::io::Error> {
        Ok(Self {
            policy,
            marks: ReplayMarks::open(state_file)?,
        })
    }

    /// The correlation id of a payload, if it has one — for answering even a refused command.
    pub fn correlation_id(bytes: &[u8]) -> Option<String> {
        let envelope: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let payload = envelope.get("payload")?.as_str()?;
        let command: serde_json::Value = serde_json::from_str(payload).ok()?;
        let id = command.get("id")?.as_str()?;
        // An id is echoed into a result; a huge one is not worth echoing.
        (id.len() <= 128).then(|| id.to_string())
    }

    /// Checks a payload that arrived on the topic of command `topic_name`, at Unix time `now`.
    /// On success the command's sequence number is the new high-water mark of its key, on disk
    /// before this returns.
    pub fn check(
        &mut self,
        topic_name: &str,
        bytes: &[u8],
        now: u64,
    ) -> Result<Command, Rejection> {
        self.check_sized(topic_name, bytes, now, self.policy.max_bytes)
    }

    /// `check` with another size limit (model manifests carry golden data and may be larger
    /// than commands).
    pub fn check_sized(
        &mut self,
        topic_name: &str,
        bytes: &[u8],
        now: u64,
        max_bytes: usize,
    ) -> Result<Command, Rejection> {
        let p = &self.policy;
        if bytes.len() > max_bytes {
            return Err(Rejection::TooLarge {
                bytes: bytes.len(),
                max: max_bytes,
            });
        }
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Rejection::Malformed(format!("not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| Rejection::Malformed("expected a JSON object".into()))?;
        if !object.contains_key("signature") {
            return Err(Rejection::Unsigned);
        }
        let envelope: Envelope = serde_json::from_value(value)
            .map_err(|e| Rejection::Malformed(format!("envelope: {e}")))?;
        if p.keys.is_empty() {
            return Err(Rejection::NoKeys);
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(envelope.signature.trim())
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(Rejection::BadSignature)?;
        let key = p
            .keys
            .iter()
            .find(|k| k.verify(envelope.payload.as_bytes(), &signature).is_ok())
            .ok_or(Rejection::BadSignature)?;
        let command: Command = serde_json::from_str(&envelope.payload)
            .map_err(|e| Rejection::Malformed(format!("payload: {e}")))?;
        if command.device != p.device {
            return Err(Rejection::WrongDevice(command.device));
        }
        if command.command != topic_name {
            return Err(Rejection::WrongCommand {
                signed: command.command,
                topic: topic_name.to_string(),
            });
        }
        if now > command.expires_at {
            return Err(Rejection::Expired {
                expires_at: command.expires_at,
                now,
            });
        }
        if command.issued_at > now.saturating_add(p.clock_skew_secs) {
            return Err(Rejection::NotYetValid {
                issued_at: command.issued_at,
                now,
            });
        }
        let lifetime = command.expires_at.saturating_sub(command.issued_at);
        if lifetime > p.max_lifetime_secs {
            return Err(Rejection::LifetimeTooLong {
                lifetime,
                max: p.max_lifetime_secs,
            });
        }
        let key_id = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
        self.marks.advance(&key_id, command.seq)?;
        Ok(command)
    }
}

/// Per operator key, the highest sequence number accepted; a JSON file replaced atomically.
struct ReplayMarks {
    file: PathBuf,
    marks: BTreeMap<String, u64>,
}

impl ReplayMarks {
    fn open(file: PathBuf) -> Result<Self, std::io::Error> {
        let marks = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", file.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self { file, marks })
    }

    fn advance(&mut self, key: &str, seq: u64) -> Result<(), Rejection> {
        let high_water = self.marks.get(key).copied();
        if let Some(high_water) = high_water.filter(|h| seq <= *h) {
            return Err(Rejection::Replayed { seq, high_water });
        }
        self.marks.insert(key.to_string(), seq);
        let bytes = serde_json::to_vec_pretty(&self.marks).unwrap_or_default();
        if let Err(e) = crate::durable::write_atomically(&self.file, &bytes) {
            // Not stored means not accepted: otherwise a restart would accept it again.
            match high_water {
                Some(h) => self.marks.insert(key.to_string(), h),
                None => self.marks.remove(key),
            };
            return Err(Rejection::Storage(format!("{}: {e}", self.file.display())));
        }
        Ok(())
    }
}

/// A new operator key pair from the system's random source.
pub fn generate_key() -> Result<SigningKey, getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The base64 form of a public key, as `remote.operator_keys` lists it.
pub fn public_key_text(key: &VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

/// A private key from its file: the base64 of its 32-byte seed, as `edgeinfer keygen` writes it.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("{}: not base64: {e}", path.display()))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| format!("{}: an ed25519 private key is 32 bytes", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The base64 form of a private key's seed, for its file.
pub fn signing_key_text(key: &SigningKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.to_bytes())
}

#[cfg(test)]
mod tests;
