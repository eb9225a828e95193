//! The profile as text: a table per path, a saved form (tab-separated, one
//! file per path) and the difference between two profiles, all per stream.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path as FsPath;

use sticky_host_tests::profile::Cost;

use crate::paths::Measured;

/// `value` over `streams`, rounded to a whole number.
fn per_stream(value: u64, streams: u64) -> u64 {
    value.checked_div(streams).unwrap_or(0)
}

/// The `top` functions by inclusive cost, per stream.
pub fn table(name: &str, m: &Measured, top: usize) -> String {
    let mut out = format!(
        "{name}: {} fuel per stream ({} streams; instrumented: each call costs a few \
         instructions more than in dist/sticky.wasm)\n{:>8} {:>10} {:>10}  function\n",
        per_stream(m.fuel, m.streams),
        m.streams,
        "calls",
        "inclusive",
        "own"
    );
    let mut rows: Vec<(&String, &Cost)> = m.functions.iter().collect();
    rows.sort_by_key(|(name, c)| (std::cmp::Reverse(c.inclusive), *name));
    for (function, c) in rows.into_iter().take(top) {
        let _ = writeln!(
            out,
            "{:>8} {:>10} {:>10}  {function}",
            calls(c.calls, m.streams),
            per_stream(c.inclusive, m.streams),
            per_stream(c.own, m.streams),
        );
    }
    out
}

/// Who calls the functions whose name contains `pattern`, per stream, the
/// costliest callers first.
pub fn callers(m: &Measured, pattern: &str) -> String {
    let mut out = String::new();
    let callees: BTreeSet<&String> = m
        .functions
        .keys()
        .filter(|name| name.contains(pattern))
        .collect();
    if callees.is_empty() {
        return format!("no function named like `{pattern}` ran\n");
    }
    for callee in callees {
        let _ = writeln!(
            out,
            "callers of {callee}:\n{:>8} {:>10}  caller",
            "calls", "inclusive"
        );
        let mut rows: Vec<(&String, &Cost)> = m
            .edges
            .iter()
            .filter(|((_, to), _)| to == callee)
            .map(|((from, _), c)| (from, c))
            .collect();
        rows.sort_by_key(|(from, c)| (std::cmp::Reverse(c.inclusive), *from));
        for (caller, c) in rows {
            let _ = writeln!(
                out,
                "{:>8} {:>10}  {caller}",
                calls(c.calls, m.streams),
                per_stream(c.inclusive, m.streams)
            );
        }
    }
    out
}

/// Calls per stream, with one decimal.
fn calls(total: u64, streams: u64) -> String {
    let tenths = per_stream(total.saturating_mul(10), streams);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// Writes `m` to `path`: a `streams`/`fuel` header line, then one line per
/// function (calls, inclusive, own, name; totals over all streams).
pub fn save(path: &FsPath, m: &Measured) -> Result<(), String> {
    let mut text = format!("streams\t{}\tfuel\t{}\n", m.streams, m.fuel);
    for (name, c) in &m.functions {
        let _ = writeln!(text, "{}\t{}\t{}\t{name}", c.calls, c.inclusive, c.own);
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a profile [`save`] wrote.
pub fn load(path: &FsPath) -> Result<Measured, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |line: usize| format!("{}:{line}: not a saved profile line", path.display());
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let (streams, fuel) = match header.as_slice() {
        ["streams", s, "fuel", f] => (
            s.parse().map_err(|_| bad(1))?,
            f.parse().map_err(|_| bad(1))?,
        ),
        _ => return Err(bad(1)),
    };
    let mut m = Measured {
        streams,
        fuel,
        ..Measured::default()
    };
    for (i, line) in lines.enumerate() {
        let number = i.saturating_add(2);
        let mut fields = line.splitn(4, '\t');
        let mut next = || -> Result<u64, String> {
            fields
                .next()
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| bad(number))
        };
        let cost = Cost {
            calls: next()?,
            inclusive: next()?,
            own: next()?,
        };
        let name = fields.next().ok_or_else(|| bad(number))?;
        m.functions.insert(name.to_owned(), cost);
    }
    Ok(m)
}

/// The `top` functions whose own cost per stream changed most from `old`
/// to `new`, with the totals first.
pub fn diff(name: &str, old: &Measured, new: &Measured, top: usize) -> String {
    let (old_fuel, new_fuel) = (
        per_stream(old.fuel, old.streams),
        per_stream(new.fuel, new.streams),
    );
    let mut out = format!(
        "{name}: {old_fuel} -> {new_fuel} fuel per stream ({:+})\n{:>7}  {:>13}  {:>15}  {:>11}  function\n",
        signed(new_fuel, old_fuel),
        "Δ own",
        "own",
        "inclusive",
        "calls",
    );
    let names: BTreeSet<&String> = old.functions.keys().chain(new.functions.keys()).collect();
    let mut rows: Vec<(i128, &String, Cost, Cost)> = names
        .into_iter()
        .map(|f| {
            let a = old.functions.get(f).copied().unwrap_or_default();
            let b = new.functions.get(f).copied().unwrap_or_default();
            let delta = signed(
                per_stream(b.own, new.streams),
                per_stream(a.own, old.streams),
            );
            (delta, f, a, b)
        })
        .filter(|(delta, _, a, b)| {
            *delta != 0 || per_stream(a.calls, old.streams) != per_stream(b.calls, new.streams)
        })
        .collect();
    rows.sort_by_key(|(delta, f, _, _)| (std::cmp::Reverse(delta.unsigned_abs()), *f));
    for (delta, f, a, b) in rows.into_iter().take(top) {
        let _ = writeln!(
            out,
            "{delta:>+7}  {:>13}  {:>15}  {:>11}  {f}",
            format!(
                "{}->{}",
                per_stream(a.own, old.streams),
                per_stream(b.own, new.streams)
            ),
            format!(
                "{}->{}",
                per_stream(a.inclusive, old.streams),
                per_stream(b.inclusive, new.streams)
            ),
            format!(
                "{}->{}",
                calls(a.calls, old.streams),
                calls(b.calls, new.streams)
            ),
        );
    }
    out
}

/// `a - b` as a signed number.
fn signed(a: u64, b: u64) -> i128 {
    i128::from(a).saturating_sub(i128::from(b))
}

#[cfg(test)]
mod tests;
