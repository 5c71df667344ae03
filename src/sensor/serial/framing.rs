//! Turning a serial byte stream into records: lines (CSV, JSON) or length-prefixed binary records.
//!
//! Framers take bytes as they arrive, in chunks of any size, and hand out one result per record:
//! the values, or why the record was skipped. They never fail as a whole: garbage is skipped and
//! reported, and the stream goes on.

use crate::config::{LengthPrefix, SampleType, SerialFraming};
use crate::sensor::replay::parse_record;
use std::collections::VecDeque;

/// One framed record: its values, or why it was skipped.
pub type Framed = Result<Vec<f64>, String>;

/// Cuts a byte stream into records according to the configured framing.
pub struct Framer {
    kind: Kind,
    buf: Vec<u8>,
    /// Inside an over-long line: bytes are dropped until the next newline.
    discarding: bool,
    /// Binary: bytes skipped since the stream was last in step.
    skipped: usize,
    /// Bytes dropped to get back in step since the last `take_overruns`.
    overruns: u64,
}

enum Kind {
    Csv {
        delimiter: char,
        max_line: usize,
    },
    Json {
        fields: Vec<Vec<String>>,
        max_line: usize,
    },
    Binary {
        sample: SampleType,
        values: usize,
        prefix: LengthPrefix,
    },
}

impl Framer {
    /// A framer for `framing`.
    pub fn new(framing: &SerialFraming) -> Self {
        let kind = match framing {
            SerialFraming::Csv {
                delimiter,
                max_line,
            } => Kind::Csv {
                delimiter: *delimiter,
                max_line: *max_line,
            },
            SerialFraming::Json { fields, max_line } => Kind::Json {
                fields: fields
                    .iter()
                    .map(|f| f.split('.').map(str::to_owned).collect())
                    .collect(),
                max_line: *max_line,
            },
            SerialFraming::Binary {
                sample,
                values,
                length_prefix,
            } => Kind::Binary {
                sample: *sample,
                values: *values,
                prefix: *length_prefix,
            },
        };
        Self {
            kind,
            buf: Vec::new(),
            discarding: false,
            skipped: 0,
            overruns: 0,
        }
    }

    /// Forgets a partial record (after the port was lost: the rest of it will never come).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.discarding = false;
        self.skipped = 0;
    }

    /// Bytes dropped to get back in step since the last call.
    pub fn take_overruns(&mut self) -> u64 {
        std::mem::take(&mut self.overruns)
    }

    /// Takes newly read bytes, appending every record they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<Framed>) {
        match &self.kind {
            Kind::Csv { max_line, .. } | Kind::Json { max_line, .. } => {
                let max_line = *max_line;
                for &b in bytes {
                    if b == b'\n' {
                        if std::mem::take(&mut self.discarding) {
                            continue;
                        }
                        let line = std::mem::take(&mut self.buf);
                        if let Some(record) = self.parse_line(&line) {
                            out.push_back(record);
                        }
                    } else if !self.discarding {
                        self.buf.push(b);
                        if self.buf.len() > max_line {
                            self.buf.clear();
                            self.discarding = true;
                            out.push_back(Err(format!(
                                "line longer than {max_line} bytes skipped"
                            )));
                        }
                    }
                }
            }
            Kind::Binary { .. } => {
                self.buf.extend_from_slice(bytes);
                self.frame_binary(out);
            }
        }
    }

    /// Parses one line; `None` for lines that carry no record (blank, `#` comment).
    fn parse_line(&self, line: &[u8]) -> Option<Framed> {
        let Ok(text) = std::str::from_utf8(line) else {
            return Some(Err("line is not UTF-8 text".into()));
        };
        match &self.kind {
            Kind::Csv { delimiter, .. } => parse_record(text, *delimiter).transpose(),
            Kind::Json { fields, .. } => {
                let text = text.trim();
                if text.is_empty() {
                    return None;
                }
                Some(pick_fields(text, fields))
            }
            Kind::Binary { .. } => None,
        }
    }

    fn frame_binary(&mut self, out: &mut VecDeque<Framed>) {
        let Kind::Binary {
            sample,
            values,
            prefix,
        } = self.kind
        else {
            return;
        };
        let prefix_len = match prefix {
            LengthPrefix::U8 => 1,
            LengthPrefix::U16 => 2,
        };
        let body_len = values * sample.size();
        let mut at = 0;
        while self.buf.len() - at >= prefix_len {
            let declared = match prefix {
                LengthPrefix::U8 => self.buf[at] as usize,
                LengthPrefix::U16 => u16::from_le_bytes([self.buf[at], self.buf[at + 1]]) as usize,
            };
            if declared != body_len {
                // Not a record start: slide one byte.
                at += 1;
                self.skipped += 1;
                self.overruns += 1;
                continue;
            }
            if self.buf.len() - at < prefix_len + body_len {
                break;
            }
            if self.skipped > 0 {
                out.push_back(Err(format!(
                    "{} byte(s) skipped to find the next record",
                    std::mem::take(&mut self.skipped)
                )));
            }
            let body = &self.buf[at + prefix_len..at + prefix_len + body_len];
            let record: Vec<f64> = match sample {
                SampleType::F32 => body
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                    .collect(),
                SampleType::I16 => body
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
                    .collect(),
            };
            at += prefix_len + body_len;
            if record.iter().all(|v| v.is_finite()) {
                out.push_back(Ok(record));
            } else {
                out.push_back(Err("record holds a NaN or infinite value".into()));
            }
        }
        self.buf.drain(..at);
    }
}

/// The named numeric fields of a JSON object, in order; dotted names reach into nested objects.
fn pick_fields(text: &str, fields: &[Vec<String>]) -> Framed {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    fields
        .iter()
        .map(|path| {
            let found = path.iter().try_fold(&value, |v, key| v.get(key));
            match found {
                None => Err(format!("field \"{}\" is missing", path.join("."))),
                Some(v) => v
                    .as_f64()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("field \"{}\" is not a number", path.join("."))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(framing: SerialFraming, chunks: &[&[u8]]) -> (Vec<Framed>, u64) {
        let mut f = Framer::new(&framing);
        let mut out = VecDeque::new();
        for c in chunks {
            f.feed(c, &mut out);
        }
        (out.into_iter().collect(), f.take_overruns())
    }

    fn csv(max_line: usize) -> SerialFraming {
        SerialFraming::Csv {
            delimiter: ',',
            max_line,
        }
    }

    #[test]
    fn csv_lines_split_across_reads_garbage_and_long_lines_are_reported_not_fatal() {
        let (got, _) = frame(
            csv(16),
            &[
                b"1,2",
                b",3\r\n\xff\xfe\x01garbage\n",
                b"123456789,123456789\n# c\n\n4,5,6\n",
            ],
        );
        assert_eq!(got[0], Ok(vec![1.0, 2.0, 3.0]));
        assert!(got[1].as_ref().unwrap_err().contains("UTF-8"), "{got:?}");
        assert!(
            got[2].as_ref().unwrap_err().contains("longer than 16"),
            "{got:?}"
        );
        assert_eq!(got[3], Ok(vec![4.0, 5.0, 6.0]));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn json_fields_are_picked_by_name_in_order_including_nested_ones() {
        let framing = SerialFraming::Json {
            fields: vec!["b".into(), "imu.ax".into()],
            max_line: 256,
        };
        let (got, _) = frame(
            framing,
            &[b"{\"a\":1,\"b\":2.5,\"imu\":{\"ax\":-1}}\n{\"b\":\"x\",\"imu\":{\"ax\":1}}\n{\"b\":1}\n[1]\n{oops\n"],
        );
        assert_eq!(got[0], Ok(vec![2.5, -1.0]));
        assert!(got[1]
            .as_ref()
            .unwrap_err()
            .contains("\"b\" is not a number"));
        assert!(got[2]
            .as_ref()
            .unwrap_err()
            .contains("\"imu.ax\" is missing"));
        assert!(got[3].is_err() && got[4].is_err());
    }

    fn record_f32(values: &[f32]) -> Vec<u8> {
        let mut b = vec![(values.len() * 4) as u8];
        for v in values {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn binary_records_resynchronise_after_garbage_and_count_skipped_bytes() {
        let framing = SerialFraming::Binary {
            sample: SampleType::F32,
            values: 2,
            length_prefix: LengthPrefix::U8,
        };
        let mut stream = record_f32(&[1.0, -2.0]);
        stream.extend_from_slice(&[0x00, 0x07, 0x09]);
        stream.extend(record_f32(&[3.5, 4.0]));
        stream.extend(record_f32(&[f32::NAN, 4.0]));
        let (a, b) = stream.split_at(5);
        let (got, overruns) = frame(framing, &[a, b]);
        assert_eq!(got[0], Ok(vec![1.0, -2.0]));
        assert!(
            got[1].as_ref().unwrap_err().contains("3 byte(s) skipped"),
            "{got:?}"
        );
        assert_eq!(got[2], Ok(vec![3.5, 4.0]));
        assert!(got[3].is_err());
        assert_eq!(got.len(), 4);
        assert_eq!(overruns, 3);
    }

    #[test]
    fn binary_i16_with_a_two_byte_prefix() {
        let framing = SerialFraming::Binary {
            sample: SampleType::I16,
            values: 3,
            length_prefix: LengthPrefix::U16,
        };
        let mut stream = vec![6, 0];
        for v in [-32768i16, 0, 1234] {
            stream.extend_from_slice(&v.to_le_bytes());
        }
        let (got, _) = frame(framing, &[&stream[..3], &stream[3..]]);
        assert_eq!(got, vec![Ok(vec![-32768.0, 0.0, 1234.0])]);
    }
}
