//! File-system watching (inotify on Linux) of the endpoint directory and of
//! the directories holding the policy inputs: every changed path goes into a
//! channel. Directories are watched, not files, because editors and atomic
//! writers replace a file by renaming another over it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// A running watcher; dropping it stops watching.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

/// Watches `dirs` (non-recursively); changed paths arrive on the receiver.
pub fn start(dirs: &[PathBuf]) -> Result<(Watch, mpsc::UnboundedReceiver<PathBuf>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                for p in event.paths {
                    let _ = tx.send(p);
                }
            }
            Err(e) => crate::serve::telemetry::log("error", &format!("file watch: {e}")),
        })
        .map_err(|e| Error::Usage(format!("cannot watch files: {e}")))?;
    let unique: BTreeSet<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    for d in unique {
        watcher
            .watch(d, RecursiveMode::NonRecursive)
            .map_err(|e| Error::Usage(format!("cannot watch {}: {e}", d.display())))?;
    }
    Ok((Watch { _watcher: watcher }, rx))
}
