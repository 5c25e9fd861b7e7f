//! The standalone worker's connector table. No lock on it is ever held
//! while plugin code runs: an operation *checks out* a connector (its
//! running instance leaves the table, which marks it busy), works on it with
//! no lock held, and puts it back when done. Another operation on the same
//! connector waits for that (on a notification, not a lock); operations on
//! other connectors and every read (`GET /connectors`, a config, task
//! configs) go on meanwhile, reading the view kept in the table.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::warn;

use super::{Managed, TargetState};
use crate::error::ConnectError;
use crate::plugin::{ConnectorKind, Props};

/// What readers see of a connector, also while an operation has it.
#[derive(Clone, Debug)]
pub(crate) struct View {
    pub(crate) config: Props,
    pub(crate) kind: ConnectorKind,
    pub(crate) target: TargetState,
    /// The running instance's task configs (empty when not running).
    pub(crate) tasks: Vec<Props>,
}

impl View {
    fn of(m: &Managed) -> View {
        View {
            config: m.config.props.clone(),
            kind: m.kind,
            target: m.target,
            tasks: m.run.iter().flat_map(|r| r.tasks.iter().map(|t| t.props.clone())).collect(),
        }
    }
}

struct Entry {
    /// `None` while an operation has the connector checked out.
    managed: Option<Managed>,
    view: View,
}

/// See the [module docs](self).
#[derive(Default)]
pub(crate) struct ConnectorTable {
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Notified whenever a connector is put back or removed.
    released: Notify,
}

impl ConnectorTable {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connectors' names.
    pub(crate) fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// What readers see of `name`.
    pub(crate) fn view(&self, name: &str) -> Option<View> {
        self.lock().get(name).map(|e| e.view.clone())
    }

    /// Adds `name` checked out and empty, for an operation that creates it;
    /// putting it back without a connector (a start that failed) removes it.
    ///
    /// # Errors
    /// [`ConnectError::DuplicateConnector`].
    pub(crate) fn reserve(&self, name: &str, view: View) -> Result<Checkout<'_>, ConnectError> {
        let mut entries = self.lock();
        if entries.contains_key(name) {
            return Err(ConnectError::DuplicateConnector(name.to_string()));
        }
        entries.insert(name.to_string(), Entry { managed: None, view });
        Ok(Checkout { table: self, name: name.to_string(), managed: None, remove: false })
    }

    /// Takes `name` out for an operation, waiting while another operation
    /// has it.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`] (also when it is removed while
    /// waiting).
    pub(crate) async fn checkout(&self, name: &str) -> Result<Checkout<'_>, ConnectError> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking, so a release in between is not missed.
            released.as_mut().enable();
            {
                let mut entries = self.lock();
                let entry =
                    entries.get_mut(name).ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?;
                if let Some(managed) = entry.managed.take() {
                    return Ok(Checkout {
                        table: self,
                        name: name.to_string(),
                        managed: Some(managed),
                        remove: false,
                    });
                }
            }
            released.await;
        }
    }

    /// Takes every connector out for the worker's shutdown, waiting for an
    /// operation in flight at most `grace`: one still busy then (a plugin
    /// hanging in `start`) is left behind and logged. Each is removed from
    /// the table when its checkout is dropped.
    pub(crate) async fn checkout_all(&self, grace: Duration) -> Vec<Checkout<'_>> {
        let mut all = Vec::new();
        for name in self.names() {
            match tokio::time::timeout(grace, self.checkout(&name)).await {
                Ok(Ok(mut c)) => {
                    c.remove = true;
                    all.push(c);
                }
                Ok(Err(_)) => {}
                Err(_) => warn!(
                    connector = name,
                    "still busy after task.shutdown.graceful.timeout.ms (a plugin hanging?); not waiting for it"
                ),
            }
        }
        all
    }

    fn put_back(&self, name: &str, managed: Option<Managed>, remove: bool) {
        {
            let mut entries = self.lock();
            match (managed, remove) {
                (Some(m), false) => {
                    if let Some(entry) = entries.get_mut(name) {
                        entry.view = View::of(&m);
                        entry.managed = Some(m);
                    }
                }
                _ => {
                    entries.remove(name);
                }
            }
        }
        self.released.notify_waiters();
    }
}

/// A connector taken out of the table by one operation; dereferences to
/// it. Dropping it puts it back (or removes it, see [`Checkout::remove`]),
/// also when the operation returns early or its future is dropped.
pub(crate) struct Checkout<'t> {
    table: &'t ConnectorTable,
    name: String,
    managed: Option<Managed>,
    remove: bool,
}

impl Checkout<'_> {
    /// Sets the connector a reserved entry now holds.
    pub(crate) fn fill(&mut self, managed: Managed) {
        self.managed = Some(managed);
    }

    /// Removes the connector from the table when this is dropped.
    pub(crate) fn remove(&mut self) {
        self.remove = true;
    }
}

impl Deref for Checkout<'_> {
    type Target = Managed;

    fn deref(&self) -> &Managed {
        self.managed.as_ref().expect("a checked-out connector is filled before use")
    }
}

impl DerefMut for Checkout<'_> {
    fn deref_mut(&mut self) -> &mut Managed {
        self.managed.as_mut().expect("a checked-out connector is filled before use")
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        self.table.put_back(&self.name, self.managed.take(), self.remove);
    }
}
