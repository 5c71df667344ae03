//! One command's way from its signed payload to its result body: authentication (signature, device,
//! time window, replay), execution, and the result or failure JSON.

use super::auth::{Authenticator, Rejection};
use super::commands::{self, After};
use super::{unix_now, Context};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// Authenticates and runs one command; returns its result.
pub(super) async fn handle(
    ctx: &Arc<Context>,
    auth: &Arc<Mutex<Result<Authenticator, String>>>,
    max_bytes: usize,
    name: &str,
    payload: Vec<u8>,
) -> (Value, After) {
    let correlation = Authenticator::correlation_id(&payload);
    let auth = Arc::clone(auth);
    let topic_name = name.to_string();
    // Checking may write the high-water file (fsync): off the reactor.
    let checked =
        tokio::task::spawn_blocking(move || authenticate(&auth, &topic_name, &payload, max_bytes))
            .await
            .unwrap_or_else(|e| Err(Rejection::Storage(e.to_string())));
    let (body, after) = match checked {
        Err(rejection) => {
            warn!(command = name, reason = rejection.code(), detail = %rejection, "Command refused");
            (
                failure(
                    correlation,
                    name,
                    rejection.code(),
                    rejection.to_string(),
                    None,
                ),
                After::Nothing,
            )
        }
        Ok(command) => {
            let id = Some(command.id.clone());
            match commands::execute(ctx, &command).await {
                Ok((result, after)) => {
                    info!(command = name, id = %command.id, seq = command.seq, "Command done");
                    (
                        json!({ "id": id, "command": name, "ok": true, "result": result }),
                        after,
                    )
                }
                Err(f) => {
                    warn!(command = name, id = %command.id, reason = f.code, detail = %f.message, "Command failed");
                    (
                        failure(id, name, f.code, f.message, f.details),
                        After::Nothing,
                    )
                }
            }
        }
    };
    (body, after)
}

/// Checks a signed payload (blocking: it may write the high-water file); a damaged high-water
/// file refuses everything with its reason.
pub(super) fn authenticate(
    auth: &Mutex<Result<Authenticator, String>>,
    name: &str,
    payload: &[u8],
    max_bytes: usize,
) -> Result<super::auth::Command, Rejection> {
    let mut guard = auth.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_mut() {
        Ok(a) => a.check_sized(name, payload, unix_now(), max_bytes),
        Err(reason) => Err(Rejection::Storage(reason.clone())),
    }
}

/// The result body of a refused or failed command.
pub(super) fn failure(
    id: Option<String>,
    name: &str,
    code: &str,
    message: String,
    details: Option<Value>,
) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let Some(d) = details {
        error["details"] = d;
    }
    json!({ "id": id, "command": name, "ok": false, "error": error })
}
