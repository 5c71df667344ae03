//! How a record is laid out in sled: version, CRC32, sensor id, payload.
//!
//! `[1 u8 version][crc32 u32 LE of everything after it][sensor len u16 LE][sensor][payload]`.
//! The checksum catches records damaged on disk, which sled itself does not always detect.

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + 2;

/// Encodes one record.
pub(super) fn encode(sensor: &str, payload: &[u8]) -> Vec<u8> {
    let sensor = &sensor.as_bytes()[..sensor.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(HEADER + sensor.len() + payload.len());
    out.push(VERSION);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(sensor.len() as u16).to_le_bytes());
    out.extend_from_slice(sensor);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[5..]);
    out[1..5].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes one record into (sensor, payload), or says why it is damaged.
pub(super) fn decode(bytes: &[u8]) -> Result<(String, Vec<u8>), &'static str> {
    if bytes.len() < HEADER {
        return Err("shorter than its header");
    }
    if bytes[0] != VERSION {
        return Err("unknown record version");
    }
    let crc = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if crc32fast::hash(&bytes[5..]) != crc {
        return Err("checksum mismatch");
    }
    let len = u16::from_le_bytes([bytes[5], bytes[6]]) as usize;
    let sensor = bytes
        .get(HEADER..HEADER + len)
        .ok_or("sensor id truncated")?;
    let sensor = std::str::from_utf8(sensor).map_err(|_| "sensor id is not UTF-8")?;
    Ok((sensor.to_string(), bytes[HEADER + len..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_any_flipped_bit() {
        let enc = encode("cam0", b"{\"a\":1}");
        assert_eq!(
            decode(&enc).unwrap(),
            ("cam0".to_string(), b"{\"a\":1}".to_vec())
        );
        for i in 1..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
        assert!(decode(&enc[..3]).is_err());
    }
}
