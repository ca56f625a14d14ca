//! Output: a header naming the machine, then per scenario a readable table and one
//! JSON line (`{"scenario":...}`) with every figure, the ratios and `target_met`.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::child::BenchEnv;

/// Prints what the figures were measured on.
pub fn header(env: &BenchEnv) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "wa-sessiond-bench  {}",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    println!(
        "machine: {cores} cores, load average {} (other work on the machine makes figures noisy; ratios are measured side by side)",
        load_average()
    );
    println!("daemon:  {}", env.daemon_bin.display());
    println!(
        "build:   {}",
        if cfg!(debug_assertions) {
            "debug (figures are not meaningful)"
        } else {
            "release"
        }
    );
    println!();
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Notes a scenario's failure (already printed by the scenario's error) by name.
pub fn outcome(name: &str, result: Result<(), String>, failed: &mut Vec<String>) {
    if let Err(e) = result {
        println!("{name}: could not finish: {e}\n");
        println!("{}", json!({ "scenario": name, "error": e }));
        failed.push(name.to_owned());
    }
}

/// A target: what we aim at and whether this run met it.
pub struct Target {
    /// Its key in `target_met`.
    pub key: &'static str,
    /// In words.
    pub text: String,
    /// Met, missed, or not judged here (None).
    pub met: Option<bool>,
}

/// Prints a scenario's table, its targets and its JSON line.
pub fn scenario(name: &str, table: &[Vec<String>], targets: &[Target], mut figures: Map<String, Value>) {
    println!("== {name}");
    print_table(table);
    for target in targets {
        let verdict = match target.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not judged at this size",
        };
        println!("target {}: {verdict}", target.text);
    }
    println!();
    let met: Map<String, Value> = targets
        .iter()
        .map(|t| (t.key.to_owned(), t.met.map_or(Value::Null, Value::Bool)))
        .collect();
    figures.insert("load_average_1m".into(), load_average().into());
    figures.insert("target_met".into(), Value::Object(met));
    // The scenario's name first, so a line reads (and greps) by it.
    let rest = Value::Object(figures).to_string();
    println!("{{\"scenario\":{},{}", Value::from(name), &rest[1..]);
    println!();
}

/// Prints rows as aligned columns; the first row is the header.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (v, w))| if c == 0 { format!("{v:<w$}") } else { format!("{v:>w$}") })
            .collect();
        println!("  {}", cells.join("  "));
        if n == 0 {
            println!(
                "  {}",
                widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
            );
        }
    }
}

/// Cells of a row.
pub fn row(cells: &[&dyn std::fmt::Display]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// A number rounded to 3 decimals, for JSON.
pub fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
