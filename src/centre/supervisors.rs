//! Supervisors: their accounts and sessions, what each may see and act on (their
//! [`Scope`]), and the audit log of what they do. A supervisor is given teams and
//! queues; they see those queues and their work, and the agents of those teams and of
//! those queues, nothing else.

use super::{hash_password, password_matches, token, verify_password, Centre, CentreError};
use crate::config::{AgentConfig, Config, SupervisorConfig};
use crate::store::{AgentRow, Audit, Store, StoreError};
use std::collections::{BTreeSet, HashMap};

/// A supervisor account: the config form (password left out) and the password's hash.
#[derive(Clone, Debug)]
pub struct Supervisor {
    pub spec: SupervisorConfig,
    pub hash: String,
    /// "config" (read-only to the API) or "api".
    pub source: String,
}

/// What a supervisor may see and act on.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Scope {
    /// Whose: work they took over stays theirs wherever it waited.
    #[serde(skip)]
    pub supervisor: String,
    pub queues: BTreeSet<String>,
    /// The agents of their teams and those who serve their queues.
    pub agents: BTreeSet<String>,
}

impl Scope {
    pub fn of(spec: &SupervisorConfig, agents: &[AgentConfig]) -> Scope {
        let queues: BTreeSet<String> = spec.queues.iter().cloned().collect();
        let agents = agents
            .iter()
            .filter(|a| {
                a.team.as_ref().is_some_and(|t| spec.teams.contains(t))
                    || a.queues.iter().any(|q| queues.contains(q))
            })
            .map(|a| a.name.clone())
            .collect();
        Scope {
            supervisor: spec.name.clone(),
            queues,
            agents,
        }
    }

    pub fn has_queue(&self, q: &str) -> bool {
        self.queues.contains(q)
    }

    pub fn has_agent(&self, a: &str) -> bool {
        self.agents.contains(a)
    }

    /// Work in one of their queues, or held by one of their agents.
    pub fn has_work(&self, queue: Option<&str>, agent: Option<&str>) -> bool {
        queue.is_some_and(|q| self.has_queue(q)) || agent.is_some_and(|a| self.has_agent(a))
    }

    /// Live work on the floor: [`Scope::has_work`], or a chat they took over.
    pub fn has_live(&self, w: &crate::actors::router::floor::FloorWork) -> bool {
        self.has_work(Some(&w.queue), w.agent.as_deref())
            || w.supervisor.as_deref() == Some(self.supervisor.as_str())
    }
}

/// Writes the config file's supervisors to the store (keeping a stored hash while the
/// password is unchanged) and reads back every supervisor.
pub(super) async fn load(
    cfg: &Config,
    store: &Store,
) -> Result<HashMap<String, Supervisor>, StoreError> {
    let stored = store.supervisors().await?;
    for s in cfg.effective_supervisors() {
        let hash = stored
            .iter()
            .find(|r| {
                r.name == s.name
                    && r.source == "config"
                    && verify_password(&s.password, &r.password_hash)
            })
            .map(|r| r.password_hash.clone())
            .unwrap_or_else(|| hash_password(&s.password));
        let spec = SupervisorConfig {
            password: String::new(),
            ..s.clone()
        };
        store
            .put_supervisor(
                &s.name,
                &serde_json::to_value(&spec).unwrap_or_default(),
                &hash,
                "config",
            )
            .await?;
    }
    let mut out = HashMap::new();
    for AgentRow {
        name,
        spec,
        password_hash,
        source,
    } in store.supervisors().await?
    {
        match serde_json::from_value::<SupervisorConfig>(spec) {
            Ok(spec) => {
                out.insert(
                    name,
                    Supervisor {
                        spec,
                        hash: password_hash,
                        source,
                    },
                );
            }
            Err(err) => {
                tracing::error!(supervisor = %name, error = %err, "stored supervisor unreadable; skipped")
            }
        }
    }
    Ok(out)
}

impl Centre {
    fn supervisors_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Supervisor>> {
        self.0
            .supervisors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn supervisor_sessions(&self) -> std::sync::MutexGuard<'_, crate::logins::Sessions> {
        self.0
            .supervisor_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn supervisor(&self, name: &str) -> Option<Supervisor> {
        self.supervisors_map().get(name).cloned()
    }

    pub fn supervisor_list(&self) -> Vec<Supervisor> {
        let mut v: Vec<_> = self.supervisors_map().values().cloned().collect();
        v.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        v
    }

    /// What a supervisor may see now (agents as they are configured now).
    pub fn scope(&self, name: &str) -> Option<Scope> {
        let spec = self.supervisor(name)?.spec;
        let agents: Vec<AgentConfig> = self.accounts().into_iter().map(|a| a.spec).collect();
        Some(Scope::of(&spec, &agents))
    }

    /// A supervisor's login from `from` (throttled as agents' are): a session token.
    pub async fn supervisor_login_from(
        &self,
        from: std::net::IpAddr,
        name: &str,
        password: &str,
    ) -> Result<String, CentreError> {
        let attempt = async {
            let sup = self.supervisor(name);
            let ok = password_matches(password, sup.as_ref().map(|s| s.hash.clone())).await;
            if sup.is_none() || !ok {
                return Err(CentreError::BadLogin);
            }
            self.audit(
                name,
                "login",
                None,
                serde_json::json!({"from": from.to_string()}),
            )
            .await?;
            let t = token();
            self.supervisor_sessions()
                .create(crate::clock::now(), name, t.clone());
            tracing::info!(supervisor = %name, "supervisor logged in");
            Ok(t)
        };
        self.throttled(from, name, attempt).await
    }

    /// The supervisor a session token belongs to (counting as a use).
    pub fn supervisor_session(&self, token: &str) -> Option<String> {
        self.supervisor_sessions().touch(crate::clock::now(), token)
    }

    /// Whether a supervisor's session is still valid, without counting as a use.
    pub fn supervisor_session_alive(&self, token: &str) -> bool {
        self.supervisor_sessions().alive(crate::clock::now(), token)
    }

    /// Ends every session of a supervisor.
    pub fn supervisor_logout(&self, name: &str) {
        self.supervisor_sessions().end(name);
    }

    /// Writes a supervisor's act in the audit log; an act that cannot be logged is not
    /// done (the caller returns the error).
    pub async fn audit(
        &self,
        supervisor: &str,
        action: &str,
        interaction: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<(), CentreError> {
        self.store()
            .audit(&Audit {
                actor: supervisor,
                role: "supervisor",
                action,
                interaction,
                detail,
            })
            .await?;
        Ok(())
    }

    /// Creates or changes a supervisor made through the API (the config file's are
    /// changed in the file). A new password ends their sessions.
    pub async fn put_supervisor(
        &self,
        spec: SupervisorConfig,
        create: bool,
    ) -> Result<(), CentreError> {
        let existing = self.supervisor(&spec.name);
        let name = spec.name.clone();
        match (&existing, create) {
            (Some(_), true) => {
                return Err(CentreError::Conflict(format!(
                    "supervisor \"{name}\" exists"
                )))
            }
            (None, false) => {
                return Err(CentreError::NotFound(format!(
                    "no supervisor named \"{name}\""
                )))
            }
            (Some(s), _) if s.source == "config" => {
                return Err(CentreError::Conflict(format!(
                    "supervisor \"{name}\" is defined in the config file; change it there"
                )))
            }
            _ => {}
        }
        let hash = match (&existing, spec.password.is_empty()) {
            (_, false) => {
                let pw = spec.password.clone();
                tokio::task::spawn_blocking(move || hash_password(&pw))
                    .await
                    .map_err(|e| CentreError::Internal(e.to_string()))?
            }
            (Some(s), true) => s.hash.clone(),
            (None, true) => return Err(CentreError::Refused("password is required".into())),
        };
        let stored = SupervisorConfig {
            password: String::new(),
            ..spec
        };
        self.store()
            .put_supervisor(
                &name,
                &serde_json::to_value(&stored).unwrap_or_default(),
                &hash,
                "api",
            )
            .await?;
        let changed_password = existing.is_some_and(|s| s.hash != hash);
        self.supervisors_map().insert(
            name.clone(),
            Supervisor {
                spec: stored,
                hash,
                source: "api".into(),
            },
        );
        if changed_password {
            self.supervisor_logout(&name);
        }
        Ok(())
    }

    pub async fn delete_supervisor(&self, name: &str) -> Result<(), CentreError> {
        match self.supervisor(name) {
            None => Err(CentreError::NotFound(format!(
                "no supervisor named \"{name}\""
            ))),
            Some(s) if s.source == "config" => Err(CentreError::Conflict(format!(
                "supervisor \"{name}\" is defined in the config file; remove it there"
            ))),
            Some(_) => {
                self.store().delete_supervisor(name).await?;
                self.supervisors_map().remove(name);
                self.supervisor_logout(name);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, team: Option<&str>, queues: &[&str]) -> AgentConfig {
        AgentConfig {
            name: name.into(),
            password: String::new(),
            display_name: String::new(),
            skills: Default::default(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            capacity: Default::default(),
            call_blocks_others: true,
            team: team.map(String::from),
            extension: None,
        }
    }

    #[test]
    fn a_supervisor_sees_their_teams_agents_and_their_queues_and_nothing_else() {
        let spec = SupervisorConfig {
            name: "sue".into(),
            password: String::new(),
            display_name: String::new(),
            teams: vec!["day".into()],
            queues: vec!["sales".into()],
            extension: None,
            privacy_officer: false,
        };
        let agents = [
            agent("ann", Some("day"), &["support"]),
            agent("bob", None, &["sales", "support"]),
            agent("cat", Some("night"), &["support"]),
            agent("dan", None, &[]),
        ];
        let s = Scope::of(&spec, &agents);
        assert_eq!(
            s.agents.iter().map(String::as_str).collect::<Vec<_>>(),
            ["ann", "bob"]
        );
        assert!(s.has_queue("sales") && !s.has_queue("support"));
        assert!(s.has_work(Some("sales"), None));
        assert!(s.has_work(Some("support"), Some("ann")));
        assert!(!s.has_work(Some("support"), Some("cat")));
        assert!(!s.has_work(None, None));
    }
}
