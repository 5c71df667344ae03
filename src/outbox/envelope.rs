//! How a record is laid out in sled: version, CRC32, store time, per-sensor ordinal, sensor id,
//! payload.
//!
//! `[2 u8][crc32 u32 LE of everything after it][stored_at ms u64 LE][ordinal u64 LE]`
//! `[sensor len u16 LE][sensor][payload]`. The checksum catches records damaged on disk, which sled
//! itself does not always detect. Version 1 (no time, no ordinal) is still read.

const VERSION: u8 = 2;
const HEADER: usize = 1 + 4 + 8 + 8 + 2;
const HEADER_V1: usize = 1 + 4 + 2;

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Envelope {
    /// Unix time in ms when it was stored (0: unknown, from version 1).
    pub stored_at_ms: u64,
    /// Position in its sensor's stream of predictions, for thinning.
    pub ordinal: u64,
    pub sensor: String,
    pub payload: Vec<u8>,
}

/// Encodes one record.
pub(super) fn encode(sensor: &str, stored_at_ms: u64, ordinal: u64, payload: &[u8]) -> Vec<u8> {
    let sensor = &sensor.as_bytes()[..sensor.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(HEADER + sensor.len() + payload.len());
    out.push(VERSION);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&stored_at_ms.to_le_bytes());
    out.extend_from_slice(&ordinal.to_le_bytes());
    out.extend_from_slice(&(sensor.len() as u16).to_le_bytes());
    out.extend_from_slice(sensor);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[5..]);
    out[1..5].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes one record, or says why it is damaged.
pub(super) fn decode(bytes: &[u8]) -> Result<Envelope, &'static str> {
    let header = match bytes.first() {
        Some(1) => HEADER_V1,
        Some(&VERSION) => HEADER,
        Some(_) => return Err("unknown record version"),
        None => return Err("empty"),
    };
    if bytes.len() < header {
        return Err("shorter than its header");
    }
    let crc = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if crc32fast::hash(&bytes[5..]) != crc {
        return Err("checksum mismatch");
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let (stored_at_ms, ordinal) = if header == HEADER {
        (u64_at(5), u64_at(13))
    } else {
        (0, 0)
    };
    let len = u16::from_le_bytes([bytes[header - 2], bytes[header - 1]]) as usize;
    let sensor = bytes
        .get(header..header + len)
        .ok_or("sensor id truncated")?;
    let sensor = std::str::from_utf8(sensor).map_err(|_| "sensor id is not UTF-8")?;
    Ok(Envelope {
        stored_at_ms,
        ordinal,
        sensor: sensor.to_string(),
        payload: bytes[header + len..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_any_flipped_bit() {
        let enc = encode("cam0", 1_700_000_000_123, 42, b"{\"a\":1}");
        let dec = decode(&enc).unwrap();
        assert_eq!(
            dec,
            Envelope {
                stored_at_ms: 1_700_000_000_123,
                ordinal: 42,
                sensor: "cam0".into(),
                payload: b"{\"a\":1}".to_vec()
            }
        );
        for i in 1..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
        assert!(decode(&enc[..3]).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn reads_version_1_records() {
        let mut v1 = vec![1u8, 0, 0, 0, 0, 2, 0, b's', b'1', b'{', b'}'];
        let crc = crc32fast::hash(&v1[5..]);
        v1[1..5].copy_from_slice(&crc.to_le_bytes());
        let dec = decode(&v1).unwrap();
        assert_eq!(
            (dec.sensor.as_str(), dec.payload.as_slice()),
            ("s1", &b"{}"[..])
        );
        assert_eq!((dec.stored_at_ms, dec.ordinal), (0, 0));
    }
}
