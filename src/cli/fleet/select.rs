//! Which devices a fleet command acts on: device id globs (`--device 'barn-*'`) and label
//! conditions (`--select 'site=barn-3,board=pi4'`, values may be globs too).

use super::directory::DeviceView;
use crate::config::device::{check_label_key, check_label_value};
use glob::Pattern;

/// Devices whose id matches any of the globs (all when there is none) and whose labels meet
/// every condition.
#[derive(Debug, Default)]
pub(super) struct Selector {
    devices: Vec<Pattern>,
    labels: Vec<(String, Pattern)>,
}

impl Selector {
    /// From `--device` globs and `--select` lists; every problem is reported.
    pub(super) fn parse(devices: &[String], selects: &[String]) -> Result<Self, String> {
        let mut problems = Vec::new();
        let mut selector = Selector::default();
        for glob in devices {
            match Pattern::new(glob) {
                Ok(p) => selector.devices.push(p),
                Err(e) => problems.push(format!("--device \"{glob}\": {e}")),
            }
        }
        for list in selects {
            for condition in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let Some((key, value)) = condition.split_once('=') else {
                    problems.push(format!(
                        "--select \"{condition}\": expected LABEL=VALUE (e.g. site=barn-3)"
                    ));
                    continue;
                };
                let (key, value) = (key.trim(), value.trim());
                if let Err(e) = check_label_key(key) {
                    problems.push(format!("--select \"{condition}\": {e}"));
                    continue;
                }
                // A value is checked as a label value with its glob characters taken out.
                let plain: String = value.chars().filter(|c| !"*?[]!".contains(*c)).collect();
                if !plain.is_empty() {
                    if let Err(e) = check_label_value(&plain) {
                        problems.push(format!("--select \"{condition}\": {e}"));
                        continue;
                    }
                }
                match Pattern::new(value) {
                    Ok(p) => selector.labels.push((key.to_string(), p)),
                    Err(e) => problems.push(format!("--select \"{condition}\": {e}")),
                }
            }
        }
        if problems.is_empty() {
            Ok(selector)
        } else {
            Err(problems.join("; "))
        }
    }

    /// Whether `device` is selected.
    pub(super) fn matches(&self, device: &DeviceView) -> bool {
        let id_ok =
            self.devices.is_empty() || self.devices.iter().any(|p| p.matches(&device.device));
        id_ok
            && self.labels.iter().all(|(key, pattern)| {
                device
                    .labels
                    .get(key)
                    .is_some_and(|value| pattern.matches(value))
            })
    }

    /// Label names the conditions use that no device among `known` carries: a typing error, most
    /// likely, and reported as one before anything is sent.
    pub(super) fn unknown_keys<'d>(
        &self,
        known: impl Iterator<Item = &'d DeviceView> + Clone,
    ) -> Vec<String> {
        let mut unknown: Vec<String> = self
            .labels
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !known.clone().any(|d| d.labels.contains_key(k)))
            .collect();
        unknown.dedup();
        unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, labels: &[(&str, &str)]) -> DeviceView {
        DeviceView {
            device: id.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..DeviceView::default()
        }
    }

    #[test]
    fn globs_and_labels_select_together() {
        let s = Selector::parse(&["barn-*".into()], &["site=north,board=pi*".into()]).unwrap();
        assert!(s.matches(&device("barn-1", &[("site", "north"), ("board", "pi4")])));
        assert!(!s.matches(&device("shop-1", &[("site", "north"), ("board", "pi4")])));
        assert!(!s.matches(&device("barn-2", &[("site", "south"), ("board", "pi4")])));
        assert!(!s.matches(&device("barn-3", &[("site", "north")])));
        let all = Selector::parse(&[], &[]).unwrap();
        assert!(all.matches(&device("anything", &[])));
    }

    #[test]
    fn bad_conditions_are_all_reported() {
        let e = Selector::parse(&["[".into()], &["site,9x=1,board=a b".into()]).unwrap_err();
        assert!(e.contains("--device \"[\""), "{e}");
        assert!(e.contains("\"site\": expected LABEL=VALUE"), "{e}");
        assert!(e.contains("label name \"9x\""), "{e}");
        assert!(e.contains("label value \"a b\""), "{e}");
    }

    #[test]
    fn keys_no_device_has_are_unknown() {
        let s = Selector::parse(&[], &["site=a,sight=b".into()]).unwrap();
        let known = [device("d1", &[("site", "a")])];
        assert_eq!(s.unknown_keys(known.iter()), vec!["sight".to_string()]);
    }
}
