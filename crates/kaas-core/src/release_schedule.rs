//! Upstream's Kubernetes release schedule — `data/releases/schedule.yaml` of the
//! kubernetes/website repository, which kubernetes.io/releases is built from — and its
//! conversion into kaas's [`KubernetesVersions`].
//!
//! Upstream's file, as its `schedule-builder` writes it:
//!
//! ```yaml
//! schedules:
//! - endOfLifeDate: "2027-06-28"
//!   maintenanceModeStartDate: "2027-04-28"
//!   next: {release: 1.36.2, cherryPickDeadline: "2026-06-05", targetDate: "2026-06-09"}
//!   previousPatches:
//!   - {release: 1.36.1, cherryPickDeadline: "2026-05-08", targetDate: "2026-05-13"}
//!   release: "1.36"
//!   releaseDate: "2026-04-22"
//! upcoming_releases: [...]
//! ```
//!
//! Only what the version policy needs is read: each minor's `release` and
//! `endOfLifeDate`, and the `release` and `targetDate` of its `previousPatches` (the
//! patch releases out so far). `next` is a plan, not a release, and is left out. Older
//! copies write `release: 1.30` and dates unquoted; both are read as text, so `1.30`
//! stays `1.30`. Fields kaas does not use are ignored, so upstream may add more.

use chrono::NaiveDate;
use serde::Deserialize;

use crate::meta::API_VERSION;
use crate::stack::{KubernetesRelease, KubernetesVersions, PatchRelease, minor_number};

/// Upstream's file. Every field is optional here, so that a missing one is reported
/// with its full path rather than serde's bare "missing field".
#[derive(Debug, Deserialize)]
struct Schedule {
    schedules: Option<Vec<MinorSchedule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MinorSchedule {
    release: Option<String>,
    end_of_life_date: Option<String>,
    previous_patches: Option<Vec<Patch>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Patch {
    release: Option<String>,
    target_date: Option<String>,
}

/// Where and when the upstream data was taken, and what kaas adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// Recorded as the document's `source`.
    pub source: String,
    /// Recorded as the document's `takenOn`.
    pub taken_on: NaiveDate,
    /// kaas's own setting, which upstream does not know.
    pub patch_grace_days: u32,
}

/// Reads upstream's `schedule.yaml` (`origin` names it in errors) into a validated
/// [`KubernetesVersions`]: minors oldest first, patches newest first.
pub fn convert(
    origin: &str,
    text: &str,
    conversion: &Conversion,
) -> Result<KubernetesVersions, String> {
    let schedule: Schedule = serde_saphyr::from_str(text)
        .map_err(|e| format!("{origin}: not a release schedule: {e}"))?;
    let at = |field: String, reason: String| format!("{origin}: {field}: {reason}");
    let minors = schedule
        .schedules
        .ok_or_else(|| at("schedules".into(), "missing".into()))?;
    if minors.is_empty() {
        return Err(at("schedules".into(), "lists no release".into()));
    }
    let mut releases = Vec::with_capacity(minors.len());
    for (i, entry) in minors.into_iter().enumerate() {
        let field = |name: &str| format!("schedules[{i}].{name}");
        let minor = required(entry.release, || field("release")).map_err(|e| at(e.0, e.1))?;
        let minor = minor.trim().trim_start_matches('v').to_owned();
        let (major_n, minor_n) = minor_number(&minor).ok_or_else(|| {
            at(
                field("release"),
                format!("{minor:?} is not a minor version such as \"1.36\""),
            )
        })?;
        let end_of_life =
            date(entry.end_of_life_date, || field("endOfLifeDate")).map_err(|e| at(e.0, e.1))?;
        let mut patches = Vec::new();
        for (j, patch) in entry
            .previous_patches
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let field = |name: &str| format!("schedules[{i}].previousPatches[{j}].{name}");
            let version = required(patch.release, || field("release")).map_err(|e| at(e.0, e.1))?;
            let version = format!("v{}", version.trim().trim_start_matches('v'));
            match crate::stack::version_triple(&version) {
                Some((major, minor, _)) if (major, minor) == (major_n, minor_n) => {}
                Some(_) => {
                    return Err(at(
                        field("release"),
                        format!("{version} is not a patch release of {minor}"),
                    ));
                }
                None => {
                    return Err(at(
                        field("release"),
                        format!("{version:?} is not an exact version such as {minor}.1"),
                    ));
                }
            }
            let released =
                date(patch.target_date, || field("targetDate")).map_err(|e| at(e.0, e.1))?;
            patches.push(PatchRelease { version, released });
        }
        patches.sort_by_key(|p| std::cmp::Reverse(crate::stack::version_triple(&p.version)));
        releases.push(KubernetesRelease {
            minor,
            end_of_life,
            patches,
        });
    }
    releases.sort_by_key(|r| minor_number(&r.minor));
    // A schedule lists releases that are out; one after the day it was taken means
    // that day is wrong.
    if let Some(newest) = releases
        .iter()
        .flat_map(|r| &r.patches)
        .max_by_key(|p| p.released)
        .filter(|p| p.released > conversion.taken_on)
    {
        return Err(format!(
            "{origin}: takenOn: {} is before {} was released ({}); the schedule cannot have been taken before its newest release",
            conversion.taken_on, newest.version, newest.released
        ));
    }
    let versions = KubernetesVersions {
        api_version: API_VERSION.to_owned(),
        kind: "KubernetesVersions".to_owned(),
        source: Some(conversion.source.clone()),
        taken_on: Some(conversion.taken_on),
        patch_grace_days: conversion.patch_grace_days,
        releases,
    };
    versions
        .validate()
        .map_err(|e| format!("{origin}: converted release data: {e}"))?;
    Ok(versions)
}

/// A field's text, or `(field, "missing")`.
fn required(value: Option<String>, field: impl Fn() -> String) -> Result<String, (String, String)> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err((field(), "must not be empty".to_owned())),
        None => Err((field(), "missing".to_owned())),
    }
}

/// A field's `YYYY-MM-DD` date.
fn date(value: Option<String>, field: impl Fn() -> String) -> Result<NaiveDate, (String, String)> {
    let text = required(value, &field)?;
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|e| (field(), format!("{text:?} is not a date (YYYY-MM-DD): {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stack::{ClusterStack, PolicyFinding, StackCatalog};

    /// A schedule in upstream's shape, made up for the tests: one minor as today's
    /// schedule-builder writes it (quoted dates, `next`, notes), one as older copies
    /// did (unquoted `1.30` and dates), one with no patch release yet.
    const SCHEDULE: &str = r#"# Use "schedule-builder" to maintain this file.
---
schedules:
- endOfLifeDate: "2031-06-28"
  maintenanceModeStartDate: "2031-04-28"
  next:
    cherryPickDeadline: "2030-06-05"
    release: 1.31.3
    targetDate: "2030-06-09"
  previousPatches:
  - cherryPickDeadline: "2030-05-08"
    release: 1.31.2
    targetDate: "2030-05-12"
  - cherryPickDeadline: N/A
    note: Out of band release to pick up a new version of Go.
    release: 1.31.1
    targetDate: "2030-04-30"
  - release: 1.31.0
    targetDate: "2030-04-22"
  release: "1.31"
  releaseDate: "2030-04-22"
- release: 1.30
  releaseDate: 2029-12-10
  maintenanceModeStartDate: 2030-12-28
  endOfLifeDate: 2031-02-28
  previousPatches:
    - release: 1.30.1
      cherryPickDeadline: ""
      targetDate: 2030-01-15
- endOfLifeDate: "2031-10-28"
  next:
    release: 1.32.1
    targetDate: "2030-09-10"
  previousPatches: []
  release: "1.32"
  releaseDate: "2030-08-26"
upcoming_releases:
- cherryPickDeadline: "2030-06-05"
  targetDate: "2030-06-09"
"#;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn conversion() -> Conversion {
        Conversion {
            source: "https://example.org/schedule.yaml".to_owned(),
            taken_on: day("2030-05-20"),
            patch_grace_days: 14,
        }
    }

    fn error_of(text: &str) -> String {
        convert("schedule.yaml", text, &conversion()).unwrap_err()
    }

    #[test]
    fn a_schedule_becomes_release_data_with_its_provenance() {
        let v = convert("schedule.yaml", SCHEDULE, &conversion()).unwrap();
        assert_eq!(
            v.source.as_deref(),
            Some("https://example.org/schedule.yaml")
        );
        assert_eq!(v.taken_on, Some(day("2030-05-20")));
        assert_eq!(v.patch_grace_days, 14);
        let minors: Vec<&str> = v.releases.iter().map(|r| r.minor.as_str()).collect();
        assert_eq!(minors, ["1.30", "1.31", "1.32"]);
        assert_eq!(v.releases[0].end_of_life, day("2031-02-28"));
        assert_eq!(
            v.releases[0].patches,
            [PatchRelease {
                version: "v1.30.1".to_owned(),
                released: day("2030-01-15")
            }]
        );
        // Newest first, and the planned v1.31.3 is not a release yet.
        let patches: Vec<&str> = v.releases[1]
            .patches
            .iter()
            .map(|p| p.version.as_str())
            .collect();
        assert_eq!(patches, ["v1.31.2", "v1.31.1", "v1.31.0"]);
        assert!(v.releases[2].patches.is_empty());
        // What is written is read back unchanged.
        let yaml = v.to_yaml();
        assert_eq!(KubernetesVersions::parse("out.yaml", &yaml).unwrap(), v);
    }

    #[test]
    fn converted_data_drives_the_version_policy() {
        let v = convert("schedule.yaml", SCHEDULE, &conversion()).unwrap();
        let catalog = StackCatalog::builtin().unwrap();
        let mut stack: ClusterStack = catalog.all()[0].clone();
        stack.spec.kubernetes_version = "v1.31.1".to_owned();
        let findings = v.assess(&stack, day("2030-06-01"));
        assert!(
            matches!(&findings[..], [PolicyFinding::PatchBehind { newer, .. }] if newer == "v1.31.2"),
            "{findings:?}"
        );
        stack.spec.kubernetes_version = "v1.30.1".to_owned();
        assert!(matches!(
            v.assess(&stack, day("2031-03-01"))[..],
            [PolicyFinding::EndOfLife { .. }]
        ));
    }

    #[test]
    fn missing_fields_are_named_with_their_path() {
        let cases = [
            (
                "upcoming_releases: []\n",
                "schedule.yaml: schedules: missing",
            ),
            ("schedules: []\n", "schedules: lists no release"),
            (
                "schedules:\n- endOfLifeDate: \"2031-06-28\"\n",
                "schedules[0].release: missing",
            ),
            (
                "schedules:\n- release: \"1.31\"\n",
                "schedules[0].endOfLifeDate: missing",
            ),
            (
                "schedules:\n- {release: \"1.31\", endOfLifeDate: \"\"}\n",
                "schedules[0].endOfLifeDate: must not be empty",
            ),
            (
                "schedules:\n- release: \"1.31\"\n  endOfLifeDate: \"2031-06-28\"\n  previousPatches:\n  - targetDate: \"2030-05-12\"\n",
                "schedules[0].previousPatches[0].release: missing",
            ),
            (
                "schedules:\n- release: \"1.31\"\n  endOfLifeDate: \"2031-06-28\"\n  previousPatches:\n  - release: 1.31.2\n",
                "schedules[0].previousPatches[0].targetDate: missing",
            ),
        ];
        for (text, expected) in cases {
            let error = error_of(text);
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_field_and_the_reason() {
        let cases = [
            (
                "schedules:\n- {release: \"1.31\", endOfLifeDate: \"2031-02-30\"}\n",
                "schedules[0].endOfLifeDate: \"2031-02-30\" is not a date (YYYY-MM-DD)",
            ),
            (
                "schedules:\n- {release: \"1.31\", endOfLifeDate: \"28.06.2031\"}\n",
                "schedules[0].endOfLifeDate: \"28.06.2031\" is not a date",
            ),
            (
                "schedules:\n- release: \"1.31\"\n  endOfLifeDate: \"2031-06-28\"\n  previousPatches:\n  - {release: 1.31.2, targetDate: \"soon\"}\n",
                "schedules[0].previousPatches[0].targetDate: \"soon\" is not a date",
            ),
            (
                "schedules:\n- {release: \"one.thirty\", endOfLifeDate: \"2031-06-28\"}\n",
                "schedules[0].release: \"one.thirty\" is not a minor version",
            ),
            (
                "schedules:\n- release: \"1.31\"\n  endOfLifeDate: \"2031-06-28\"\n  previousPatches:\n  - {release: 1.30.9, targetDate: \"2030-05-12\"}\n",
                "schedules[0].previousPatches[0].release: v1.30.9 is not a patch release of 1.31",
            ),
            (
                "schedules:\n- release: \"1.31\"\n  endOfLifeDate: \"2031-06-28\"\n  previousPatches:\n  - {release: Not Planned, targetDate: \"2030-05-12\"}\n",
                "schedules[0].previousPatches[0].release: \"vNot Planned\" is not an exact version",
            ),
            (
                "schedules:\n- {release: \"1.31\", endOfLifeDate: \"2031-06-28\"}\n- {release: \"1.31\", endOfLifeDate: \"2031-06-28\"}\n",
                "\"1.31\" is listed twice",
            ),
            ("schedules: 7\n", "schedule.yaml: not a release schedule"),
        ];
        for (text, expected) in cases {
            let error = error_of(text);
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    #[test]
    fn data_cannot_hold_releases_after_the_day_it_was_taken() {
        let early = Conversion {
            taken_on: day("2030-05-01"),
            ..conversion()
        };
        let error = convert("schedule.yaml", SCHEDULE, &early).unwrap_err();
        assert!(
            error.contains("takenOn: 2030-05-01 is before v1.31.2 was released (2030-05-12)"),
            "{error}"
        );
    }
}
