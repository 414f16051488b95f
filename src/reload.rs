//! Live reload of the users (and groups) files: a change seen in their folder (a debounced file
//! watch) or a SIGHUP loads them again with start-up's own `load_users` and swaps the result in
//! whole. Requests read the users through an [`ArcSwap`], so a swap never waits for a request
//! and a request never waits for a file read. A file that does not load leaves the previous users
//! in force and is logged once, naming its line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::Watcher as _;

use crate::config::{Config, UsersSource};
use crate::startup::load_users;
use crate::users::Users;

/// How long the watched folder must stay quiet before the files are read: an editor's save or a
/// `htpasswd` run is several events (create, write, rename) that should make one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Loads the users again on request and swaps them in.
#[derive(Debug)]
pub(crate) struct UsersReload {
    config: Arc<Config>,
    users: Arc<ArcSwap<Users>>,
    /// Serialises reloads, so that an older read never replaces a newer one.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl UsersReload {
    /// A reloader of `config`'s files into `users`; `None` in demo mode (nothing to reload).
    pub(crate) fn new(config: Arc<Config>, users: Arc<ArcSwap<Users>>) -> Option<Arc<Self>> {
        match config.users {
            UsersSource::File(_) => Some(Arc::new(Self {
                config,
                users,
                one_at_a_time: tokio::sync::Mutex::new(()),
            })),
            UsersSource::Demo => None,
        }
    }

    /// Reads the files (off the async workers) and swaps the users in, or logs why not and keeps
    /// the ones in force. `why` says what asked for it, in the log line.
    pub(crate) async fn reload(&self, why: &'static str) {
        let _one = self.one_at_a_time.lock().await;
        let config = Arc::clone(&self.config);
        match tokio::task::spawn_blocking(move || load_users(&config)).await {
            Ok(Ok(users)) => {
                let n = users.len();
                self.users.store(Arc::new(users));
                tracing::info!(users = n, "{why}: users reloaded");
            }
            Ok(Err(e)) => tracing::error!(
                error = %e,
                "{why}: users not reloaded; the previous users stay in force"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "{why}: users not reloaded; the previous users stay in force"
            ),
        }
    }

    /// The files to watch: the users file and the groups file, as configured and with their
    /// links followed (a link swapped to a new target, as Kubernetes does with a ConfigMap, shows
    /// in the link's folder; an edit of the target, in the target's).
    fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let UsersSource::File(path) = &self.config.users {
            files.push(path.clone());
        }
        files.extend(self.config.groups.iter().cloned());
        let linked: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| std::fs::canonicalize(f).ok())
            .collect();
        files.extend(linked);
        files.sort();
        files.dedup();
        files
    }

    /// Starts watching the files' folders (a folder, not the file: a file replaced by a rename,
    /// as every atomic writer does, would leave a watch on the file watching the old copy) and
    /// returns the task that reloads after each quiet spell following a change. Our own rewrites
    /// (a rehash at login) are seen too: reloading the file we wrote is harmless, it holds what
    /// memory holds. `None`, logged, when watching cannot start: SIGHUP still reloads.
    pub(crate) fn watch(self: &Arc<Self>) -> Option<impl Future<Output = ()> + Send + use<>> {
        let files = self.files();
        let names: Vec<OsString> = files
            .iter()
            .filter_map(|f| f.file_name().map(ToOwned::to_owned))
            .collect();
        // One pending signal is enough: the reload reads the files as they are by then.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let handler = move |event: notify::Result<notify::Event>| {
            // Only changes: an open or a read (ours, when we reload) is not one, and taking it
            // for one would make each reload set off the next.
            let ours = event.is_ok_and(|e| {
                !matches!(e.kind, notify::EventKind::Access(_))
                    && e.paths
                        .iter()
                        .any(|p| p.file_name().is_some_and(|n| names.iter().any(|w| w == n)))
            });
            if ours {
                let _ = tx.try_send(());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the users file; reload it with SIGHUP");
                return None;
            }
        };
        let mut folders: Vec<&Path> = files.iter().map(|f| folder_of(f)).collect();
        folders.sort();
        folders.dedup();
        for folder in folders {
            if let Err(e) = watcher.watch(folder, notify::RecursiveMode::NonRecursive) {
                tracing::error!(
                    folder = %folder.display(),
                    error = %e,
                    "cannot watch the users file's folder; reload it with SIGHUP"
                );
                return None;
            }
        }
        let this = Arc::clone(self);
        Some(async move {
            // The watcher lives as long as this task.
            let _watcher = watcher;
            while rx.recv().await.is_some() {
                loop {
                    match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                        Ok(Some(())) => {}
                        Ok(None) => return,
                        Err(_quiet) => break,
                    }
                }
                this.reload("users file changed").await;
            }
        })
    }
}

/// The folder of `file`: its parent, or `.` for a bare file name.
fn folder_of(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
