//! Every link in the repository's Markdown resolves, and every folder says
//! what it holds.
//!
//! * Every Markdown file git knows (tracked, or new and not ignored) is read;
//!   every inline link or image `[text](target)` and every reference
//!   definition `[name]: target` outside code blocks and code spans is
//!   checked:
//!   - a relative path must name a file or folder of the repository (tracked,
//!     or new and not ignored: a git-ignored file is not there on a fresh
//!     clone), resolved from the linking file's folder (`/path` from the
//!     repository root);
//!   - an `#anchor` on a Markdown file (or alone, for the same file) must be
//!     the GitHub slug of one of its headings (duplicates get `-1`, `-2`, …)
//!     or an explicit `<a name>` / `id`; on any other file only GitHub's line
//!     anchors `#L10` / `#L10-L20` are accepted;
//!   - `http(s)://` links are not fetched (no network), only checked to be
//!     well formed; `mailto:` is accepted; any other scheme is refused.
//! * Every top-level folder and every crate folder (one with a Cargo.toml)
//!   has a README.md that starts with a `# Title` line, then, as the first
//!   line of its first paragraph, the folder's path in backticks (`` `istio/` ``)
//!   followed by what it holds.
//!
//! Failures name `file:line` and the bad link. Pure std; needs `git` on PATH
//! (falls back to walking the tree, skipping build output, when it is absent).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The repository root: this crate lives in `examples/`.
fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Every file of the repository, relative to the root with `/` separators:
/// tracked, or untracked and not ignored.
fn repo_files(root: &Path) -> BTreeSet<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => o
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            // A file deleted in the work tree but still in the index is gone.
            .filter(|p| root.join(p).exists())
            .collect(),
        _ => {
            let mut files = BTreeSet::new();
            walk(root, root, &mut files);
            files
        }
    }
}

/// The fallback without git: every file below `dir`, build output skipped.
fn walk(root: &Path, dir: &Path, files: &mut BTreeSet<String>) {
    const SKIP: &[&str] = &[
        ".git",
        "target",
        "dist",
        ".venv",
        ".venv-mcp",
        "node_modules",
        "fuzz/target",
        "fuzz/artifacts",
        "fuzz/coverage",
        "results/tmp",
    ];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        if SKIP.contains(&rel.as_str()) {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            files.insert(rel);
        }
    }
}

/// A link found in a Markdown file.
#[derive(Debug)]
struct Link {
    line: usize,
    target: String,
}

/// What a Markdown file offers and uses: its links and its anchors.
#[derive(Debug, Default)]
struct Page {
    links: Vec<Link>,
    anchors: BTreeSet<String>,
}

/// Reads links and heading anchors, skipping fenced code blocks.
fn parse_page(text: &str) -> Page {
    let mut page = Page::default();
    let mut slugger = Slugger::default();
    let mut fence: Option<(char, usize)> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut prev_paragraph: Option<&str> = None;
    // Link text may wrap across the lines of a paragraph: links are looked
    // for in whole blocks (a paragraph, a table row, a heading).
    let mut block: Vec<(usize, String)> = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        let line_no = i + 1;
        let trimmed = raw.trim_start();
        if let Some((ch, len)) = fence {
            let run = trimmed.chars().take_while(|c| *c == ch).count();
            if run >= len && trimmed[run * ch.len_utf8()..].trim().is_empty() {
                fence = None;
            }
            continue;
        }
        if let Some(ch) = ['`', '~'].into_iter().find(|c| trimmed.starts_with(*c)) {
            let run = trimmed.chars().take_while(|c| *c == ch).count();
            if run >= 3 {
                fence = Some((ch, run));
                prev_paragraph = None;
                flush_block(&mut block, &mut page.links);
                continue;
            }
        }
        // Setext heading: a paragraph line underlined with === or ---.
        let underline = raw.trim();
        if let Some(text) = prev_paragraph
            && !underline.is_empty()
            && raw.len() - trimmed.len() < 4
            && (underline.chars().all(|c| c == '=') || underline.chars().all(|c| c == '-'))
        {
            page.anchors.insert(slugger.slug(&heading_text(text)));
            prev_paragraph = None;
            continue;
        }
        let indent = raw.len() - trimmed.len();
        if let Some(h) = atx_heading(trimmed).filter(|_| indent < 4) {
            page.anchors.insert(slugger.slug(&heading_text(h)));
            prev_paragraph = None;
        } else if trimmed.is_empty() || trimmed.starts_with('|') || trimmed.starts_with('>') {
            prev_paragraph = None;
        } else {
            prev_paragraph = Some(trimmed);
        }
        let code_free = strip_code_spans(raw);
        collect_html_anchors(&code_free, &mut page.anchors);
        if let Some(target) = reference_definition(&code_free) {
            flush_block(&mut block, &mut page.links);
            page.links.push(Link {
                line: line_no,
                target,
            });
            continue;
        }
        let own_block = trimmed.starts_with('|') || atx_heading(trimmed).is_some();
        if trimmed.is_empty() || own_block {
            flush_block(&mut block, &mut page.links);
        }
        if !trimmed.is_empty() {
            block.push((line_no, code_free));
        }
        if own_block {
            flush_block(&mut block, &mut page.links);
        }
    }
    flush_block(&mut block, &mut page.links);
    page
}

/// Collects the inline links of a block of lines, each with the line its
/// destination starts on, and empties the block.
fn flush_block(block: &mut Vec<(usize, String)>, links: &mut Vec<Link>) {
    let Some((first_line, _)) = block.first() else {
        return;
    };
    let first_line = *first_line;
    let joined = block
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let chars: Vec<char> = joined.chars().collect();
    for (at, target) in inline_link_targets(&chars, 0) {
        let newlines = chars.iter().take(at).filter(|c| **c == '\n').count();
        links.push(Link {
            line: first_line + newlines,
            target,
        });
    }
    block.clear();
}

/// The text of an ATX heading (`## Text ##`), if the line is one.
fn atx_heading(trimmed: &str) -> Option<&str> {
    let level = trimmed.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let mut text = rest.trim();
    // An optional closing sequence of #s, preceded by a space.
    let closing = text.trim_end_matches('#');
    if closing.len() < text.len() && (closing.is_empty() || closing.ends_with([' ', '\t'])) {
        text = closing.trim_end();
    }
    Some(text)
}

/// A heading's rendered text: code spans keep their content, links and
/// images keep their text, emphasis markers and HTML tags go.
fn heading_text(src: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() && chars[i + 1].is_ascii_punctuation() {
            out.push(chars[i + 1]);
            i += 2;
        } else if c == '`' {
            let run = count_run(&chars, i, '`');
            match find_run(&chars, i + run, '`', run) {
                Some(end) => {
                    let inner: String = chars[i + run..end].iter().collect();
                    let inner =
                        if inner.starts_with(' ') && inner.ends_with(' ') && inner.trim() != "" {
                            inner[1..inner.len() - 1].to_string()
                        } else {
                            inner
                        };
                    out.push_str(&inner);
                    i = end + run;
                }
                None => {
                    out.extend(&chars[i..i + run]);
                    i += run;
                }
            }
        } else if c == '<' {
            match chars[i..].iter().position(|c| *c == '>') {
                Some(len)
                    if chars
                        .get(i + 1)
                        .is_some_and(|c| c.is_ascii_alphabetic() || *c == '/') =>
                {
                    i += len + 1;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        } else if c == '!' && chars.get(i + 1) == Some(&'[') {
            i += 1;
        } else if c == '[' {
            // [text](url) → text; a bare [text] stays as it is.
            match link_end(&chars, i) {
                Some((text_end, after)) => {
                    let text: String = chars[i + 1..text_end].iter().collect();
                    out.push_str(&heading_text(&text));
                    i = after;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else if c == '*' {
            i += 1;
        } else if c == '_' {
            // Emphasis underscores sit at a word's edge; snake_case ones stay.
            let run = count_run(&chars, i, '_');
            let before = i.checked_sub(1).and_then(|j| chars.get(j));
            let after = chars.get(i + run);
            let inner = before.is_some_and(|c| c.is_alphanumeric())
                && after.is_some_and(|c| c.is_alphanumeric());
            if inner {
                out.extend(&chars[i..i + run]);
            }
            i += run;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// For `[text](target)` starting at `open`: the index of `]` and the index
/// after the closing `)`.
fn link_end(chars: &[char], open: usize) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let mut j = open;
    let close = loop {
        match chars.get(j)? {
            '\\' => j += 1,
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    break j;
                }
            }
            _ => {}
        }
        j += 1;
    };
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let mut depth = 0usize;
    let mut k = close + 1;
    loop {
        match chars.get(k)? {
            '\n' => return None,
            '\\' => k += 1,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((close, k + 1));
                }
            }
            _ => {}
        }
        k += 1;
    }
}

fn count_run(chars: &[char], from: usize, c: char) -> usize {
    chars[from..].iter().take_while(|x| **x == c).count()
}

/// The start of the next run of exactly `len` `c`s at or after `from`.
fn find_run(chars: &[char], from: usize, c: char, len: usize) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        if chars[j] == c {
            let run = count_run(chars, j, c);
            if run == len {
                return Some(j);
            }
            j += run;
        } else {
            j += 1;
        }
    }
    None
}

/// The line with every code span replaced by spaces (so `[x](y)` inside
/// backticks is not a link); an unmatched backtick run stays literal.
fn strip_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            out.push(chars[i]);
            out.push(chars[i + 1]);
            i += 2;
        } else if chars[i] == '`' {
            let run = count_run(&chars, i, '`');
            match find_run(&chars, i + run, '`', run) {
                Some(end) => {
                    out.extend(std::iter::repeat_n(' ', end + run - i));
                    i = end + run;
                }
                None => {
                    out.extend(&chars[i..i + run]);
                    i += run;
                }
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The targets of every `[text](target)` and `![alt](target)` in `chars`,
/// each with the index (plus `offset`) where its destination starts.
fn inline_link_targets(chars: &[char], offset: usize) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i] == '['
            && let Some((close, after)) = link_end(chars, i)
        {
            let inner: String = chars[close + 2..after - 1].iter().collect();
            targets.push((offset + close + 2, link_destination(&inner)));
            // Links nest inside image alt text and link text: look inside.
            targets.extend(inline_link_targets(&chars[i + 1..close], offset + i + 1));
            i = after;
            continue;
        }
        i += 1;
    }
    targets.sort_by_key(|(at, _)| *at);
    targets
}

/// The destination of a link's `(…)`: `<dest>` or the first word, without
/// the optional title.
fn link_destination(inner: &str) -> String {
    let inner = inner.trim();
    if let Some(rest) = inner.strip_prefix('<') {
        return rest.split('>').next().unwrap_or_default().to_string();
    }
    inner
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `[name]: target` at the start of a line (a reference definition).
fn reference_definition(line: &str) -> Option<String> {
    let t = line.trim_start();
    if line.len() - t.len() > 3 || !t.starts_with('[') || t.starts_with("[^") {
        return None;
    }
    let close = t.find("]:")?;
    if t[1..close].contains(['[', ']']) || close == 1 {
        return None;
    }
    let dest = link_destination(&t[close + 2..]);
    (!dest.is_empty()).then_some(dest)
}

/// `<a name="x">` and `id="x"` anchors written in HTML.
fn collect_html_anchors(line: &str, anchors: &mut BTreeSet<String>) {
    for attr in ["name=\"", "id=\""] {
        let mut rest = line;
        while let Some(at) = rest.find(attr) {
            let before = rest[..at].chars().last();
            rest = &rest[at + attr.len()..];
            if before.is_some_and(|c| c.is_whitespace())
                && let Some(end) = rest.find('"')
            {
                anchors.insert(rest[..end].to_string());
            }
        }
    }
}

/// GitHub's heading anchors (github-slugger): lowercase; drop every
/// character that is not a letter, digit, mark, `-`, `_` or space; each
/// space becomes `-`; a repeated slug gets `-1`, `-2`, … .
#[derive(Default)]
struct Slugger {
    occurrences: HashMap<String, usize>,
}

impl Slugger {
    fn slug(&mut self, text: &str) -> String {
        let base = slug(text);
        let mut candidate = base.clone();
        while self.occurrences.contains_key(&candidate) {
            let n = self.occurrences.entry(base.clone()).or_insert(0);
            *n += 1;
            candidate = format!("{base}-{n}");
        }
        self.occurrences.insert(candidate.clone(), 0);
        candidate
    }
}

fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            // Combining marks (accents written as separate code points).
            c if ('\u{300}'..='\u{36f}').contains(&c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Percent-decoding for link paths and anchors (`%20`, `%C3%A9`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a/b/../c` → `a/c`; `None` when the path leaves the repository.
fn normalize(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// Whether an external URL is well formed: a scheme, `//`, a host without
/// spaces, nothing unbalanced.
fn external_link_problem(target: &str) -> Option<&'static str> {
    let rest = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Some("no host");
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-:[]@".contains(c))
    {
        return Some("the host has characters a host cannot have");
    }
    if !host.contains('.') && !host.starts_with("localhost") && !host.starts_with('[') {
        return Some("the host has no domain");
    }
    if target
        .chars()
        .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == '"')
    {
        return Some("a character a URL cannot hold unescaped");
    }
    None
}

/// Every problem with the links of every Markdown file.
fn link_problems(root: &Path, files: &BTreeSet<String>) -> Vec<String> {
    let dirs: BTreeSet<String> = files
        .iter()
        .flat_map(|f| {
            let mut ds = Vec::new();
            let mut p = Path::new(f).parent();
            while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                ds.push(d.to_string_lossy().into_owned());
                p = d.parent();
            }
            ds
        })
        .collect();
    let markdown: Vec<&String> = files.iter().filter(|f| f.ends_with(".md")).collect();
    let mut pages: HashMap<String, Page> = HashMap::new();
    for f in &markdown {
        let text = std::fs::read_to_string(root.join(f)).unwrap_or_default();
        pages.insert((*f).clone(), parse_page(&text));
    }
    let mut problems = Vec::new();
    for f in &markdown {
        let page = &pages[*f];
        let here = Path::new(f.as_str()).parent().unwrap_or(Path::new(""));
        for link in &page.links {
            let at = format!("{f}:{}", link.line);
            let t = link.target.as_str();
            if t.is_empty() {
                problems.push(format!("{at}: empty link target"));
                continue;
            }
            if t.starts_with("http://") || t.starts_with("https://") {
                if let Some(why) = external_link_problem(t) {
                    problems.push(format!("{at}: malformed URL `{t}`: {why}"));
                }
                continue;
            }
            if t.starts_with("mailto:") {
                continue;
            }
            if let Some(colon) = t.find(':')
                && t[..colon]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
                && !t[..colon].contains('/')
            {
                problems.push(format!(
                    "{at}: link `{t}` uses a scheme other than http(s) or mailto"
                ));
                continue;
            }
            let (path_part, anchor) = match t.split_once('#') {
                Some((p, a)) => (p, Some(percent_decode(a))),
                None => (t, None),
            };
            let path_part = path_part.split('?').next().unwrap_or_default();
            let resolved = if path_part.is_empty() {
                Some((*f).clone())
            } else {
                let decoded = percent_decode(path_part);
                match decoded.strip_prefix('/') {
                    Some(from_root) => normalize(Path::new(from_root)),
                    None => normalize(&here.join(&decoded)),
                }
            };
            let Some(resolved) = resolved else {
                problems.push(format!("{at}: link `{t}` points outside the repository"));
                continue;
            };
            let is_file = files.contains(&resolved);
            let is_dir = resolved.is_empty() || dirs.contains(&resolved);
            if !is_file && !is_dir {
                let why = if root.join(&resolved).exists() {
                    "exists here but is git-ignored, so not in a clone"
                } else {
                    "no such file or folder"
                };
                problems.push(format!("{at}: broken link `{t}`: {resolved} {why}"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if is_dir {
                problems.push(format!("{at}: link `{t}` puts an anchor on a folder"));
            } else if let Some(target) = pages.get(&resolved) {
                if !target.anchors.contains(&anchor) {
                    let near: Vec<&String> = target
                        .anchors
                        .iter()
                        .filter(|a| a.contains(&anchor) || anchor.contains(a.as_str()))
                        .take(5)
                        .collect();
                    problems.push(format!(
                        "{at}: broken anchor `{t}`: {resolved} has no heading with slug `{anchor}`{}",
                        if near.is_empty() { String::new() } else { format!(" (similar: {near:?})") }
                    ));
                }
            } else if !is_line_anchor(&anchor) {
                problems.push(format!(
                    "{at}: link `{t}`: anchor `#{anchor}` on a non-Markdown file (only #L10 or #L10-L20 line anchors)"
                ));
            }
        }
    }
    problems
}

fn is_line_anchor(a: &str) -> bool {
    let one = |s: &str| {
        s.strip_prefix('L')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    match a.split_once('-') {
        Some((x, y)) => one(x) && one(y),
        None => one(a),
    }
}

/// Folders that must say what they hold: every top-level folder (not a
/// dot-folder) and every crate folder.
fn folders_needing_readme(files: &BTreeSet<String>) -> BTreeSet<String> {
    let mut folders = BTreeSet::new();
    for f in files {
        if let Some((top, _)) = f.split_once('/')
            && !top.starts_with('.')
        {
            folders.insert(top.to_string());
        }
        if let Some(dir) = f.strip_suffix("/Cargo.toml") {
            folders.insert(dir.to_string());
        }
    }
    folders
}

/// The problem with a folder's README, if any: it exists, starts with a
/// `# Title` line, and its first paragraph starts with `` `folder/` ``
/// followed by at least a few words saying what the folder holds.
fn readme_problem(root: &Path, files: &BTreeSet<String>, folder: &str) -> Option<String> {
    let path = format!("{folder}/README.md");
    if !files.contains(&path) {
        return Some(format!(
            "{folder}/: no README.md saying what the folder holds"
        ));
    }
    let text = std::fs::read_to_string(root.join(&path)).unwrap_or_default();
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, title)) = lines.next() else {
        return Some(format!("{path}:1: empty README"));
    };
    if !title.starts_with("# ") {
        return Some(format!(
            "{path}:1: must start with a `# Title` line, found `{title}`"
        ));
    }
    let Some((i, first)) = lines.next() else {
        return Some(format!("{path}: nothing after the title"));
    };
    let name = format!("`{folder}/`");
    let Some(rest) = first.strip_prefix(&name) else {
        return Some(format!(
            "{path}:{}: the first line after the title must start with {name} and say what the folder holds, found `{first}`",
            i + 1
        ));
    };
    if rest.split_whitespace().count() < 3 {
        return Some(format!(
            "{path}:{}: the first line after the title must say what {name} holds in a few words, found `{first}`",
            i + 1
        ));
    }
    None
}

#[test]
fn every_markdown_link_resolves() {
    let root = repo_root();
    let files = repo_files(&root);
    assert!(
        files.contains("README.md"),
        "no README.md found under {}",
        root.display()
    );
    let problems = link_problems(&root, &files);
    let mut msg = String::new();
    for p in &problems {
        let _ = writeln!(msg, "  {p}");
    }
    assert!(
        problems.is_empty(),
        "{} broken Markdown link(s):\n{msg}",
        problems.len()
    );
}

#[test]
fn every_folder_says_what_it_holds() {
    let root = repo_root();
    let files = repo_files(&root);
    let problems: Vec<String> = folders_needing_readme(&files)
        .iter()
        .filter_map(|f| readme_problem(&root, &files, f))
        .collect();
    assert!(
        problems.is_empty(),
        "{} folder README problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn slugs_follow_github() {
    let mut s = Slugger::default();
    let cases = [
        ("How it works", "how-it-works"),
        (
            "The control plane: `stickyctl serve`",
            "the-control-plane-stickyctl-serve",
        ),
        (
            "Wrap mode: sticking on the application's own session id (MCP and friends)",
            "wrap-mode-sticking-on-the-applications-own-session-id-mcp-and-friends",
        ),
        (
            "Native build (Envoy dynamic module)",
            "native-build-envoy-dynamic-module",
        ),
        (
            "`session.max_lifetime_seconds`",
            "sessionmax_lifetime_seconds",
        ),
        (
            "sticky — stateful session affinity",
            "sticky--stateful-session-affinity",
        ),
        ("Drain and deadlines", "drain-and-deadlines"),
        ("Drain and deadlines", "drain-and-deadlines-1"),
        ("Drain and deadlines", "drain-and-deadlines-2"),
        ("Drain and deadlines 1", "drain-and-deadlines-1-1"),
        (
            "**Bold** and _emphasis_ with snake_case",
            "bold-and-emphasis-with-snake_case",
        ),
        ("A [link](x.md) in a heading", "a-link-in-a-heading"),
        ("Überblick 2.0", "überblick-20"),
    ];
    for (heading, want) in cases {
        assert_eq!(s.slug(&heading_text(heading)), want, "heading `{heading}`");
    }
}

#[test]
fn the_checker_finds_what_it_must() {
    let page = parse_page(
        "# Title\n\nSee [a](docs/x.md#sec) and ![img](pic.svg \"t\").\n\
         `[not](a-link.md)` and\n```\n[not](in-code.md)\n## Not a heading\n```\n\
         [ref]: other.md\n## Sec `code` ##\nText\n---\n\nA [wrapped\nlink](w.md) and [no\n\nlink](x.md).\n",
    );
    let targets: Vec<(usize, &str)> = page
        .links
        .iter()
        .map(|l| (l.line, l.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        vec![
            (3, "docs/x.md#sec"),
            (3, "pic.svg"),
            (9, "other.md"),
            (15, "w.md")
        ]
    );
    let anchors: Vec<&str> = page.anchors.iter().map(String::as_str).collect();
    assert_eq!(anchors, vec!["sec-code", "text", "title"]);
    assert!(external_link_problem("https://github.com/envoyproxy/envoy/issues/23213").is_none());
    assert!(external_link_problem("https:///nohost").is_some());
    assert!(external_link_problem("https://exa mple.com").is_some());
    assert!(is_line_anchor("L10") && is_line_anchor("L10-L20") && !is_line_anchor("intro"));
}
