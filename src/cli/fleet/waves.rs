//! The numbers of a rollout: wave sizes (`1,5%,25%,100%`), the failure threshold (`10%` or a
//! count) and how a list of devices is cut into waves.

use serde::{Deserialize, Serialize};

/// How far a wave reaches: a number of devices, or a share of them, counted from the start of
/// the rollout (waves are cumulative: `1,5%,100%` is one device, then up to 5 %, then the rest).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Reach {
    /// This many devices in all.
    Devices(usize),
    /// This share of the devices in all, in percent, rounded up.
    Percent(f64),
}

impl Reach {
    fn parse(text: &str, what: &str) -> Result<Reach, String> {
        let text = text.trim();
        if let Some(p) = text.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{what} \"{text}\": not a percentage"))?;
            if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
                return Err(format!("{what} \"{text}\": must be within 0% and 100%"));
            }
            Ok(Reach::Percent(p))
        } else {
            text.parse::<usize>().map(Reach::Devices).map_err(|_| {
                format!("{what} \"{text}\": expected a number of devices or a percentage")
            })
        }
    }

    /// How many of `total` devices this is.
    fn of(self, total: usize) -> usize {
        match self {
            Reach::Devices(n) => n.min(total),
            Reach::Percent(p) => ((p / 100.0 * total as f64) - 1e-9).ceil().max(0.0) as usize,
        }
    }
}

/// `--waves`: cumulative reaches, each beyond the last, ending at 100 %.
pub(super) fn parse_waves(text: &str) -> Result<Vec<Reach>, String> {
    let mut waves = Vec::new();
    for part in text.split(',') {
        let reach = Reach::parse(part, "--waves")?;
        if reach == Reach::Percent(0.0) || reach == Reach::Devices(0) {
            return Err(format!(
                "--waves \"{}\": a wave must reach at least one device",
                part.trim()
            ));
        }
        waves.push(reach);
    }
    if waves.last() != Some(&Reach::Percent(100.0)) {
        return Err(format!(
            "--waves \"{text}\" does not reach every device: end the list with 100%"
        ));
    }
    for pair in waves.windows(2) {
        if let [Reach::Percent(a), Reach::Percent(b)] = pair {
            if b <= a {
                return Err(format!(
                    "--waves \"{text}\": each share must be larger than the one before ({b}% after {a}%)"
                ));
            }
        }
    }
    Ok(waves)
}

/// `--max-failures`: when the rollout stops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Threshold(Reach);

impl Threshold {
    pub(super) fn parse(text: &str) -> Result<Threshold, String> {
        Reach::parse(text, "--max-failures").map(Threshold)
    }

    /// Whether `failed` out of `finished` devices is past the threshold (more failures than it
    /// allows), once at least `min_devices` have finished.
    pub(super) fn exceeded(self, failed: usize, finished: usize, min_devices: usize) -> bool {
        if finished < min_devices.max(1) {
            return false;
        }
        match self.0 {
            Reach::Devices(n) => failed > n,
            Reach::Percent(p) => failed as f64 * 100.0 > p * finished as f64,
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Reach::Devices(n) => write!(f, "{n} devices"),
            Reach::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `devices` (in rollout order) cut into waves: each wave the devices from the last one's reach
/// to its own. Waves that would add no device are left out.
pub(super) fn cut(devices: &[String], waves: &[Reach]) -> Vec<Vec<String>> {
    let mut cut = Vec::new();
    let mut done = 0;
    for reach in waves {
        let upto = reach.of(devices.len()).max(done);
        if upto > done {
            cut.push(devices[done..upto].to_vec());
            done = upto;
        }
    }
    if done < devices.len() {
        cut.push(devices[done..].to_vec());
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i:03}")).collect()
    }

    fn sizes(waves: &[Vec<String>]) -> Vec<usize> {
        waves.iter().map(Vec::len).collect()
    }

    #[test]
    fn waves_are_cumulative_and_cover_every_device_once() {
        let w = parse_waves("1,5%,25%,100%").unwrap();
        assert_eq!(sizes(&cut(&ids(1000), &w)), vec![1, 49, 200, 750]);
        assert_eq!(sizes(&cut(&ids(10), &w)), vec![1, 2, 7]);
        assert_eq!(sizes(&cut(&ids(1), &w)), vec![1]);
        assert!(cut(&ids(0), &w).is_empty());
        let all: Vec<String> = cut(&ids(37), &w).concat();
        assert_eq!(all, ids(37));
        assert_eq!(
            sizes(&cut(&ids(6), &parse_waves("3,100%").unwrap())),
            vec![3, 3]
        );
    }

    #[test]
    fn bad_wave_lists_say_what_is_wrong() {
        let e = parse_waves("1,5%,50%").unwrap_err();
        assert!(e.contains("does not reach every device"), "{e}");
        assert!(parse_waves("10%,5%,100%")
            .unwrap_err()
            .contains("larger than"));
        assert!(parse_waves("1,150%")
            .unwrap_err()
            .contains("within 0% and 100%"));
        assert!(parse_waves("one,100%")
            .unwrap_err()
            .contains("expected a number"));
        assert!(parse_waves("0,100%")
            .unwrap_err()
            .contains("at least one device"));
    }

    #[test]
    fn the_threshold_counts_once_enough_devices_finished() {
        let t = Threshold::parse("10%").unwrap();
        assert!(!t.exceeded(1, 10, 1));
        assert!(t.exceeded(2, 10, 1));
        assert!(!t.exceeded(2, 10, 20));
        assert!(Threshold::parse("0%").unwrap().exceeded(1, 1, 1));
        let n = Threshold::parse("2").unwrap();
        assert!(!n.exceeded(2, 3, 1));
        assert!(n.exceeded(3, 3, 1));
        assert!(Threshold::parse("101%")
            .unwrap_err()
            .contains("within 0% and 100%"));
        assert!(Threshold::parse("-5%").is_err());
    }
}
