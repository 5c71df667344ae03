//! Line replay: one record of numbers per line of a delimited text file.

use crate::frame::Payload;
use crate::sensor::{FrameSource, Next, SensorError};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Longest line accepted; longer ones are skipped as bad input.
const MAX_LINE: usize = 64 * 1024;

/// Replays a CSV-like file of numbers.
pub struct LineReplay {
    path: PathBuf,
    header: bool,
    delimiter: char,
    reader: BufReader<File>,
    line_no: usize,
}

impl LineReplay {
    /// Opens the file.
    pub fn open(path: &Path, header: bool, delimiter: char) -> Result<Self, SensorError> {
        let reader = Self::reader(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            header,
            delimiter,
            reader,
            line_no: 0,
        })
    }

    fn reader(path: &Path) -> Result<BufReader<File>, SensorError> {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| SensorError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }
}

/// Parses one line into numbers; `Ok(None)` for lines that carry no record (blank, `#` comment).
pub fn parse_record(line: &str, delimiter: char) -> Result<Option<Vec<f64>>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    line.split(delimiter)
        .map(|f| {
            let f = f.trim();
            f.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("field {f:?} is not a finite number"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl FrameSource for LineReplay {
    fn next_payload(&mut self) -> Result<Next, SensorError> {
        loop {
            let mut buf = Vec::new();
            let n = Read::take(&mut self.reader, MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| SensorError::Open {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
            if n == 0 {
                return Ok(Next::End);
            }
            self.line_no += 1;
            if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
                // Discard the rest of the over-long line.
                let mut rest = Vec::new();
                let _ = self.reader.read_until(b'\n', &mut rest);
                return Err(SensorError::Item(format!(
                    "{}:{}: line longer than {MAX_LINE} bytes",
                    self.path.display(),
                    self.line_no
                )));
            }
            if self.header && self.line_no == 1 {
                continue;
            }
            let text = String::from_utf8_lossy(&buf);
            match parse_record(&text, self.delimiter) {
                Ok(Some(values)) => return Ok(Next::frame(Payload::Record(values))),
                Ok(None) => continue,
                Err(e) => {
                    return Err(SensorError::Item(format!(
                        "{}:{}: {e}",
                        self.path.display(),
                        self.line_no
                    )))
                }
            }
        }
    }

    fn rewind(&mut self) -> Result<(), SensorError> {
        self.reader = Self::reader(&self.path)?;
        self.line_no = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_rejects_garbage() {
        assert_eq!(
            parse_record(" 1, 2.5 ,-3e2\n", ',').unwrap(),
            Some(vec![1.0, 2.5, -300.0])
        );
        assert_eq!(parse_record("# comment", ',').unwrap(), None);
        assert_eq!(parse_record("   ", ',').unwrap(), None);
        assert!(parse_record("1,abc", ',').is_err());
        assert!(parse_record("1,NaN", ',').is_err());
        assert_eq!(parse_record("1;2", ';').unwrap(), Some(vec![1.0, 2.0]));
    }

    #[test]
    fn skips_header_and_bad_lines_and_rewinds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let long = "9".repeat(MAX_LINE + 10);
        std::fs::write(&p, format!("a,b\n1,2\nx,y\n{long}\n3,4\n")).unwrap();
        let mut r = LineReplay::open(&p, true, ',').unwrap();
        let mut got = Vec::new();
        let mut bad = 0;
        loop {
            match r.next_payload() {
                Ok(Next::Frame {
                    payload: Payload::Record(v),
                    ..
                }) => got.push(v),
                Ok(Next::End) => break,
                Ok(_) => unreachable!(),
                Err(SensorError::Item(_)) => bad += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(bad, 2);
        r.rewind().unwrap();
        assert!(
            matches!(r.next_payload(), Ok(Next::Frame { payload: Payload::Record(v), .. }) if v == vec![1.0, 2.0])
        );
    }
}
