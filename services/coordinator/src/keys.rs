//! What a coordinator does with API keys: issuing one (its secret made
//! here and shown once; the log keeps only its hash), listing and revoking.

use skyclaw_api::IssueKeyRequest;
use skyclaw_log_format::event::{Hash32, KeyGrant, KeyRole, Scope};
use skyclaw_state::{Command, KeyView};

use crate::access::random_bytes;
use crate::coordinator::Coordinator;
use crate::failure::Failure;

/// How long an enrollment key lasts when the admin does not say.
const ENROLL_TTL_MS: u64 = 3_600_000;

/// A key just issued, with the secret that is its credential.
pub struct Issued {
    pub key: KeyView,
    pub secret: String,
}

impl Coordinator {
    pub async fn issue_key(&self, request: IssueKeyRequest) -> Result<Issued, Failure> {
        let role = match request.role.as_str() {
            "admin" => KeyRole::Admin,
            "enqueuer" => KeyRole::Enqueuer,
            "auditor" => KeyRole::Auditor,
            "enroll" => KeyRole::Enroll,
            other => {
                return Err(Failure::invalid(format!(
                    "role must be admin, enqueuer, auditor or enroll; got {other:?}"
                )))
            }
        };
        let scopes = scopes(role, request.scopes.as_deref())?;
        if request.uses.is_some() && role != KeyRole::Enroll {
            return Err(Failure::invalid("only an enrollment key has uses"));
        }
        let ttl_ms = match role {
            KeyRole::Enroll => Some(request.ttl_ms.unwrap_or(ENROLL_TTL_MS)),
            _ => request.ttl_ms,
        };
        let key_id = format!("key-{}", hex::encode(random_bytes::<6>()));
        let secret = format!("sk_{}", hex::encode(random_bytes::<32>()));
        let now = self.clock.now_ms();
        let grant = KeyGrant {
            key_id: key_id.clone(),
            hash: Hash32(*blake3::hash(secret.as_bytes()).as_bytes()),
            role,
            account: request.account,
            scopes,
            expires_at: ttl_ms.map(|ttl| now + ttl),
            uses: (role == KeyRole::Enroll).then(|| request.uses.unwrap_or(1)),
        };
        self.perform(Command::IssueKey(grant)).await?;
        let key = self
            .key(&key_id)
            .ok_or_else(|| Failure::Internal(format!("key {key_id} vanished once issued")))?;
        Ok(Issued { key, secret })
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<KeyView, Failure> {
        self.perform(Command::RevokeKey {
            key_id: key_id.to_string(),
        })
        .await?;
        self.key(key_id)
            .ok_or_else(|| Failure::not_found(format!("key {key_id} not found")))
    }

    pub fn keys(&self) -> Vec<KeyView> {
        self.read(|m| m.state.keys().cloned().collect())
    }

    fn key(&self, key_id: &str) -> Option<KeyView> {
        self.read(|m| m.state.key(key_id).cloned())
    }
}

/// The scopes a key of `role` gets: an enqueuer's, those asked for (all
/// three by default); an auditor's, `log`; others, none.
fn scopes(role: KeyRole, asked: Option<&[String]>) -> Result<Vec<Scope>, Failure> {
    let parse = |name: &String| match name.as_str() {
        "enqueue" => Ok(Scope::Enqueue),
        "read" => Ok(Scope::Read),
        "cancel" => Ok(Scope::Cancel),
        "log" => Ok(Scope::Log),
        other => Err(Failure::invalid(format!(
            "scope must be enqueue, read, cancel or log; got {other:?}"
        ))),
    };
    let mut scopes = match (role, asked) {
        (KeyRole::Enqueuer, None) => vec![Scope::Enqueue, Scope::Read, Scope::Cancel],
        (KeyRole::Auditor, None) => vec![Scope::Log],
        (_, None) => vec![],
        (_, Some(asked)) => asked.iter().map(parse).collect::<Result<Vec<_>, _>>()?,
    };
    let allowed: &[Scope] = match role {
        KeyRole::Enqueuer => &[Scope::Enqueue, Scope::Read, Scope::Cancel],
        KeyRole::Auditor => &[Scope::Log],
        KeyRole::Admin | KeyRole::Enroll => &[],
    };
    if let Some(wrong) = scopes.iter().find(|scope| !allowed.contains(scope)) {
        return Err(Failure::invalid(format!(
            "a key of this role cannot have scope {}",
            crate::access::scope_name(*wrong)
        )));
    }
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}
