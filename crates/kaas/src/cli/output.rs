//! Tables in kubectl's style, and JSON/YAML output.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints rows under upper-case headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Prints a list (`{items: [...]}`) as JSON or YAML, or as a table of `headers` with
/// `row` of each item.
pub fn print_list(
    list: &Value,
    format: Format,
    headers: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
) -> Result<()> {
    if format != Format::Table {
        return print_value(list, format);
    }
    let rows: Vec<Vec<String>> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(row)
        .collect();
    print!("{}", table(headers, &rows));
    Ok(())
}

pub fn print_value(value: &Value, format: Format) -> Result<()> {
    match format {
        Format::Json | Format::Table => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", to_yaml(value)?),
    }
    Ok(())
}

pub fn to_yaml(value: &Value) -> Result<String> {
    Ok(serde_saphyr::to_string(value)?)
}

/// `5s`, `3m`, `2h`, `4d` since `time`.
pub fn age(time: Option<&str>) -> String {
    let Some(t) = time.and_then(|t| t.parse::<DateTime<Utc>>().ok()) else {
        return "-".to_owned();
    };
    let secs = (Utc::now() - t).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub fn cluster_row(c: &Value) -> Vec<String> {
    let s = &c["status"];
    let spec = &c["spec"];
    let cp = format!(
        "{}/{}",
        s["controlPlane"]["readyReplicas"].as_u64().unwrap_or(0),
        spec["controlPlane"]["replicas"].as_u64().unwrap_or(0)
    );
    let (mut ready, mut want) = (0, 0);
    for p in spec["nodePools"].as_array().into_iter().flatten() {
        want += p["replicas"].as_u64().unwrap_or(0);
    }
    for p in s["nodePools"].as_array().into_iter().flatten() {
        ready += p["readyReplicas"].as_u64().unwrap_or(0);
    }
    vec![
        c["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        s["phase"].as_str().unwrap_or("Pending").to_owned(),
        cp,
        format!("{ready}/{want}"),
        s["kubernetesVersion"].as_str().unwrap_or("-").to_owned(),
        s["apiEndpoint"].as_str().unwrap_or("-").to_owned(),
        age(c["metadata"]["createdAt"].as_str()),
    ]
}

pub const CLUSTER_HEADERS: [&str; 7] = [
    "NAME",
    "PHASE",
    "CONTROL-PLANE",
    "WORKERS",
    "VERSION",
    "ENDPOINT",
    "AGE",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let t = table(
            &["NAME", "PHASE"],
            &[
                vec!["a".into(), "Available".into()],
                vec!["longer".into(), "x".into()],
            ],
        );
        assert_eq!(t, "NAME     PHASE\na        Available\nlonger   x\n");
    }
}
