//! Commands and configurations in their trace (JSON) form.

use core::time::Duration;

use serde_json::{Value as Json, json};

use crate::client::{
    ClientAuth, ClientConfig, HandlerError, ResourceKind, Resources, RunId, RunOutput, ServerAction,
};
use crate::dialect::Dialect;
use crate::json::message::{message_from_json, message_to_json};
use crate::json::tagged::{from_tagged, to_tagged};
use crate::message::Message;
use crate::server::{ServerConfig, TransportInfo};
use crate::value::{Map, Value};

/// A command given to a [`Client`](crate::client::Client), as a trace records it.
// The variants' fields are the parameters of the methods they mirror, documented there.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientCommand {
    /// [`Client::respond`](crate::client::Client::respond).
    Respond {
        run: RunId,
        result: Result<RunOutput, HandlerError>,
    },
    /// [`Client::provide_value`](crate::client::Client::provide_value).
    ProvideValue {
        resource: String,
        value: Result<Value, HandlerError>,
    },
    /// [`Client::stream`](crate::client::Client::stream).
    Stream { resource: String },
    /// [`Client::stream_value`](crate::client::Client::stream_value).
    StreamValue { resource: String, value: Value },
    /// [`Client::run`](crate::client::Client::run).
    Run {
        resource: Value,
        input: Option<Value>,
        fire_and_forget: bool,
    },
    /// [`Client::run_action`](crate::client::Client::run_action).
    RunAction {
        action: ServerAction,
        target: Value,
        payload: Option<Value>,
    },
    /// [`Client::disconnect`](crate::client::Client::disconnect).
    Disconnect {
        reason: Option<Value>,
        wait_for_ok: bool,
    },
    /// [`Client::close_now`](crate::client::Client::close_now).
    CloseNow,
    /// [`Client::send_unchecked`](crate::client::Client::send_unchecked).
    SendUnchecked(Message),
}

/// A command given to a [`ServerSession`](crate::server::ServerSession), as a trace records it.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerCommand {
    /// [`ServerSession::accept`](crate::server::ServerSession::accept).
    Accept,
    /// [`ServerSession::reject`](crate::server::ServerSession::reject).
    Reject,
    /// [`ServerSession::run`](crate::server::ServerSession::run).
    Run {
        resource: Value,
        input: Option<Value>,
    },
    /// [`ServerSession::describe`](crate::server::ServerSession::describe).
    Describe { resource: Option<Value> },
    /// [`ServerSession::start_stream`](crate::server::ServerSession::start_stream).
    StartStream { resource: Value, interval_ms: u64 },
    /// [`ServerSession::reconfigure_stream`](crate::server::ServerSession::reconfigure_stream).
    ReconfigureStream { id: u16, interval_ms: u64 },
    /// [`ServerSession::stop_stream`](crate::server::ServerSession::stop_stream).
    StopStream { id: u16 },
    /// [`ServerSession::disconnect`](crate::server::ServerSession::disconnect).
    Disconnect { reason: Option<Value> },
    /// [`ServerSession::close_now`](crate::server::ServerSession::close_now).
    CloseNow,
    /// [`ServerSession::send_unchecked`](crate::server::ServerSession::send_unchecked).
    SendUnchecked(Message),
}

fn opt(v: &Option<Value>) -> Json {
    v.as_ref()
        .map_or(Json::Null, |v| json!({ "value": to_tagged(v) }))
}

fn get_opt(args: &Json, key: &str) -> Result<Option<Value>, String> {
    match args.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(o) => {
            let inner = o
                .get("value")
                .ok_or_else(|| format!("{key}: expected {{\"value\": …}}"))?;
            from_tagged(inner)
                .map(Some)
                .map_err(|e| format!("{key}: {e}"))
        }
    }
}

fn get_value(args: &Json, key: &str) -> Result<Value, String> {
    let v = args.get(key).ok_or_else(|| format!("missing {key}"))?;
    from_tagged(v).map_err(|e| format!("{key}: {e}"))
}

fn get_str(args: &Json, key: &str) -> Result<String, String> {
    args.get(key)
        .and_then(Json::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("missing string {key}"))
}

fn get_u64(args: &Json, key: &str) -> Result<u64, String> {
    args.get(key)
        .and_then(Json::as_u64)
        .ok_or_else(|| format!("missing integer {key}"))
}

fn get_bool(args: &Json, key: &str) -> Result<bool, String> {
    args.get(key)
        .and_then(Json::as_bool)
        .ok_or_else(|| format!("missing boolean {key}"))
}

fn error_json(e: &HandlerError) -> Json {
    json!({ "code": e.code, "message": e.message })
}

fn error_from(json: &Json) -> Result<HandlerError, String> {
    Ok(HandlerError {
        code: u32::try_from(get_u64(json, "code")?).map_err(|_| "code out of range".to_owned())?,
        message: get_str(json, "message")?,
    })
}

fn message_json(m: &Message) -> Json {
    message_to_json(m)
}

fn message_from(args: &Json) -> Result<Message, String> {
    message_from_json(args.get("message").unwrap_or(&Json::Null)).map_err(|e| e.to_string())
}

fn action_name(a: ServerAction) -> &'static str {
    match a {
        ServerAction::ReadProperty => "read_property",
        ServerAction::SetProperty => "set_property",
        ServerAction::CallDevice => "call_device",
        ServerAction::CallEndpoint => "call_endpoint",
        ServerAction::WriteBucket => "write_bucket",
    }
}

fn action_from(name: &str) -> Result<ServerAction, String> {
    Ok(match name {
        "read_property" => ServerAction::ReadProperty,
        "set_property" => ServerAction::SetProperty,
        "call_device" => ServerAction::CallDevice,
        "call_endpoint" => ServerAction::CallEndpoint,
        "write_bucket" => ServerAction::WriteBucket,
        other => return Err(format!("unknown server action {other:?}")),
    })
}

impl ClientCommand {
    /// The command's name and arguments.
    pub fn to_json(&self) -> (&'static str, Json) {
        match self {
            ClientCommand::Respond { run, result } => (
                "respond",
                match result {
                    Ok(out) => {
                        json!({ "run": run.0, "ok": { "value": opt(&out.value), "code": out.code } })
                    }
                    Err(e) => json!({ "run": run.0, "error": error_json(e) }),
                },
            ),
            ClientCommand::ProvideValue { resource, value } => (
                "provide_value",
                match value {
                    Ok(v) => json!({ "resource": resource, "value": to_tagged(v) }),
                    Err(e) => json!({ "resource": resource, "error": error_json(e) }),
                },
            ),
            ClientCommand::Stream { resource } => ("stream", json!({ "resource": resource })),
            ClientCommand::StreamValue { resource, value } => (
                "stream_value",
                json!({ "resource": resource, "value": to_tagged(value) }),
            ),
            ClientCommand::Run {
                resource,
                input,
                fire_and_forget,
            } => (
                "run",
                json!({ "resource": to_tagged(resource), "input": opt(input), "fire_and_forget": fire_and_forget }),
            ),
            ClientCommand::RunAction {
                action,
                target,
                payload,
            } => (
                "run_action",
                json!({ "action": action_name(*action), "target": to_tagged(target), "payload": opt(payload) }),
            ),
            ClientCommand::Disconnect {
                reason,
                wait_for_ok,
            } => (
                "disconnect",
                json!({ "reason": opt(reason), "wait_for_ok": wait_for_ok }),
            ),
            ClientCommand::CloseNow => ("close_now", json!({})),
            ClientCommand::SendUnchecked(m) => {
                ("send_unchecked", json!({ "message": message_json(m) }))
            }
        }
    }

    /// Parses what [`ClientCommand::to_json`] wrote.
    pub fn from_json(name: &str, args: &Json) -> Result<Self, String> {
        Ok(match name {
            "respond" => {
                let run = RunId(
                    u32::try_from(get_u64(args, "run")?)
                        .map_err(|_| "run out of range".to_owned())?,
                );
                let result = match (args.get("ok"), args.get("error")) {
                    (Some(ok), _) => Ok(RunOutput {
                        value: get_opt(ok, "value")?,
                        code: ok
                            .get("code")
                            .and_then(Json::as_u64)
                            .and_then(|c| u32::try_from(c).ok()),
                    }),
                    (None, Some(e)) => Err(error_from(e)?),
                    (None, None) => return Err("respond needs ok or error".into()),
                };
                ClientCommand::Respond { run, result }
            }
            "provide_value" => ClientCommand::ProvideValue {
                resource: get_str(args, "resource")?,
                value: match args.get("error") {
                    Some(e) => Err(error_from(e)?),
                    None => Ok(get_value(args, "value")?),
                },
            },
            "stream" => ClientCommand::Stream {
                resource: get_str(args, "resource")?,
            },
            "stream_value" => ClientCommand::StreamValue {
                resource: get_str(args, "resource")?,
                value: get_value(args, "value")?,
            },
            "run" => ClientCommand::Run {
                resource: get_value(args, "resource")?,
                input: get_opt(args, "input")?,
                fire_and_forget: get_bool(args, "fire_and_forget")?,
            },
            "run_action" => ClientCommand::RunAction {
                action: action_from(&get_str(args, "action")?)?,
                target: get_value(args, "target")?,
                payload: get_opt(args, "payload")?,
            },
            "disconnect" => ClientCommand::Disconnect {
                reason: get_opt(args, "reason")?,
                wait_for_ok: get_bool(args, "wait_for_ok")?,
            },
            "close_now" => ClientCommand::CloseNow,
            "send_unchecked" => ClientCommand::SendUnchecked(message_from(args)?),
            other => return Err(format!("unknown client command {other:?}")),
        })
    }
}

impl ServerCommand {
    /// The command's name and arguments.
    pub fn to_json(&self) -> (&'static str, Json) {
        match self {
            ServerCommand::Accept => ("accept", json!({})),
            ServerCommand::Reject => ("reject", json!({})),
            ServerCommand::Run { resource, input } => (
                "run",
                json!({ "resource": to_tagged(resource), "input": opt(input) }),
            ),
            ServerCommand::Describe { resource } => {
                ("describe", json!({ "resource": opt(resource) }))
            }
            ServerCommand::StartStream {
                resource,
                interval_ms,
            } => (
                "start_stream",
                json!({ "resource": to_tagged(resource), "interval_ms": interval_ms }),
            ),
            ServerCommand::ReconfigureStream { id, interval_ms } => (
                "reconfigure_stream",
                json!({ "id": id, "interval_ms": interval_ms }),
            ),
            ServerCommand::StopStream { id } => ("stop_stream", json!({ "id": id })),
            ServerCommand::Disconnect { reason } => {
                ("disconnect", json!({ "reason": opt(reason) }))
            }
            ServerCommand::CloseNow => ("close_now", json!({})),
            ServerCommand::SendUnchecked(m) => {
                ("send_unchecked", json!({ "message": message_json(m) }))
            }
        }
    }

    /// Parses what [`ServerCommand::to_json`] wrote.
    pub fn from_json(name: &str, args: &Json) -> Result<Self, String> {
        let id = |args: &Json| -> Result<u16, String> {
            u16::try_from(get_u64(args, "id")?).map_err(|_| "id out of range".to_owned())
        };
        Ok(match name {
            "accept" => ServerCommand::Accept,
            "reject" => ServerCommand::Reject,
            "run" => ServerCommand::Run {
                resource: get_value(args, "resource")?,
                input: get_opt(args, "input")?,
            },
            "describe" => ServerCommand::Describe {
                resource: get_opt(args, "resource")?,
            },
            "start_stream" => ServerCommand::StartStream {
                resource: get_value(args, "resource")?,
                interval_ms: get_u64(args, "interval_ms")?,
            },
            "reconfigure_stream" => ServerCommand::ReconfigureStream {
                id: id(args)?,
                interval_ms: get_u64(args, "interval_ms")?,
            },
            "stop_stream" => ServerCommand::StopStream { id: id(args)? },
            "disconnect" => ServerCommand::Disconnect {
                reason: get_opt(args, "reason")?,
            },
            "close_now" => ServerCommand::CloseNow,
            "send_unchecked" => ServerCommand::SendUnchecked(message_from(args)?),
            other => return Err(format!("unknown server command {other:?}")),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The trace header of a client configuration.
pub(crate) fn client_config_json(c: &ClientConfig) -> Json {
    let auth = match &c.auth {
        ClientAuth::Credentials {
            user,
            device,
            credential,
        } => {
            json!({ "credentials": [user, device, credential] })
        }
        ClientAuth::Certificate { pem } => json!({ "certificate": pem }),
    };
    json!({
        "dialect": c.dialect.year(),
        "auth": auth,
        "keep_alive": c.keep_alive,
        "connect_params": c.connect_params.clone().map(|m| to_tagged(&Value::Map(m))),
        "pson_version": c.pson_version,
        "first_stream_id": c.first_stream_id,
        "request_timeout_ms": millis(c.request_timeout),
        "max_body": c.max_body,
        "max_requests": c.max_requests,
        "max_streams": c.max_streams,
    })
}

fn u32_of(json: &Json, key: &str) -> Result<u32, String> {
    u32::try_from(get_u64(json, key)?).map_err(|_| format!("{key} out of range"))
}

fn usize_of(json: &Json, key: &str) -> Result<usize, String> {
    usize::try_from(get_u64(json, key)?).map_err(|_| format!("{key} out of range"))
}

pub(crate) fn client_config_from(json: &Json) -> Result<ClientConfig, String> {
    let dialect: Dialect = get_str(json, "dialect")?
        .parse()
        .map_err(|e: crate::dialect::UnknownDialect| e.to_string())?;
    let auth = json.get("auth").ok_or("missing auth")?;
    let auth = if let Some(Json::Array(parts)) = auth.get("credentials") {
        match parts.as_slice() {
            [
                Json::String(user),
                Json::String(device),
                Json::String(credential),
            ] => ClientAuth::Credentials {
                user: user.clone(),
                device: device.clone(),
                credential: credential.clone(),
            },
            _ => return Err("credentials must be three strings".into()),
        }
    } else {
        ClientAuth::Certificate {
            pem: get_str(auth, "certificate")?,
        }
    };
    let connect_params = match json.get("connect_params") {
        None | Some(Json::Null) => None,
        Some(p) => match from_tagged(p).map_err(|e| e.to_string())? {
            Value::Map(m) => Some(m),
            _ => return Err("connect_params must be a map".into()),
        },
    };
    Ok(ClientConfig {
        dialect,
        auth,
        keep_alive: json
            .get("keep_alive")
            .and_then(Json::as_u64)
            .and_then(|v| u32::try_from(v).ok()),
        connect_params: connect_params.filter(|m: &Map| !m.is_empty()),
        pson_version: json
            .get("pson_version")
            .and_then(Json::as_u64)
            .and_then(|v| u32::try_from(v).ok()),
        first_stream_id: u16::try_from(get_u64(json, "first_stream_id")?)
            .map_err(|_| "first_stream_id out of range")?,
        request_timeout: Duration::from_millis(get_u64(json, "request_timeout_ms")?),
        max_body: u32_of(json, "max_body")?,
        max_requests: usize_of(json, "max_requests")?,
        max_streams: usize_of(json, "max_streams")?,
    })
}

pub(crate) fn resources_json(r: &Resources) -> Json {
    Json::Array(
        r.iter()
            .map(|(name, kind)| json!([name, kind.code()]))
            .collect(),
    )
}

pub(crate) fn resources_from(json: &Json) -> Result<Resources, String> {
    let mut resources = Resources::new();
    for entry in json.as_array().ok_or("resources must be a list")? {
        let (name, code) = match entry.as_array().map(Vec::as_slice) {
            Some([Json::String(name), code]) => (name, code.as_u64()),
            _ => return Err("a resource is [name, fn]".into()),
        };
        let kind = match code {
            Some(1) => ResourceKind::Action,
            Some(2) => ResourceKind::Input,
            Some(3) => ResourceKind::Output,
            Some(4) => ResourceKind::InputOutput,
            _ => return Err(format!("resource {name}: fn must be 1..4")),
        };
        resources.add(name.as_str(), kind);
    }
    Ok(resources)
}

pub(crate) fn server_config_json(c: &ServerConfig, t: &TransportInfo) -> Json {
    json!({
        "auth_deadline_ms": millis(c.auth_deadline),
        "keep_alive_min": c.keep_alive_min,
        "keep_alive_max": c.keep_alive_max,
        "keep_alive_factor_permille": c.keep_alive_factor_permille,
        "request_timeout_ms": millis(c.request_timeout),
        "first_stream_id": c.first_stream_id,
        "max_body": c.max_body,
        "max_requests": c.max_requests,
        "max_streams": c.max_streams,
        "max_outgoing": c.max_outgoing,
        "tls": t.tls,
        "client_certificate": t.verified_client_certificate.as_ref().map(hex::encode),
    })
}

pub(crate) fn server_config_from(json: &Json) -> Result<(ServerConfig, TransportInfo), String> {
    let config = ServerConfig {
        auth_deadline: Duration::from_millis(get_u64(json, "auth_deadline_ms")?),
        keep_alive_min: u32_of(json, "keep_alive_min")?,
        keep_alive_max: u32_of(json, "keep_alive_max")?,
        keep_alive_factor_permille: u32_of(json, "keep_alive_factor_permille")?,
        request_timeout: Duration::from_millis(get_u64(json, "request_timeout_ms")?),
        first_stream_id: u16::try_from(get_u64(json, "first_stream_id")?)
            .map_err(|_| "first_stream_id out of range")?,
        max_body: u32_of(json, "max_body")?,
        max_requests: usize_of(json, "max_requests")?,
        max_streams: usize_of(json, "max_streams")?,
        // Traces older than the limit hold no value for it.
        max_outgoing: match json.get("max_outgoing") {
            None => crate::server::DEFAULT_MAX_OUTGOING,
            Some(_) => usize_of(json, "max_outgoing")?,
        },
    };
    let certificate = match json.get("client_certificate") {
        None | Some(Json::Null) => None,
        Some(h) => Some(
            hex::decode(h.as_str().ok_or("client_certificate must be hex")?)
                .map_err(|e| e.to_string())?,
        ),
    };
    let transport = TransportInfo {
        tls: get_bool(json, "tls")?,
        verified_client_certificate: certificate,
    };
    Ok((config, transport))
}

impl ClientCommand {
    /// Carries the command out on `client`.
    pub fn apply(
        self,
        client: &mut crate::client::Client,
        now: crate::time::Instant,
    ) -> Result<(), crate::session::CommandError> {
        match self {
            ClientCommand::Respond { run, result } => client.respond(now, run, result),
            ClientCommand::ProvideValue { resource, value } => {
                client.provide_value(now, &resource, value)
            }
            ClientCommand::Stream { resource } => client.stream(now, &resource).map(|_| ()),
            ClientCommand::StreamValue { resource, value } => {
                client.stream_value(now, &resource, value).map(|_| ())
            }
            ClientCommand::Run {
                resource,
                input,
                fire_and_forget,
            } => client
                .run(now, resource, input, fire_and_forget)
                .map(|_| ()),
            ClientCommand::RunAction {
                action,
                target,
                payload,
            } => client.run_action(now, action, target, payload).map(|_| ()),
            ClientCommand::Disconnect {
                reason,
                wait_for_ok,
            } => client.disconnect(now, reason, wait_for_ok),
            ClientCommand::CloseNow => {
                client.close_now(now);
                Ok(())
            }
            ClientCommand::SendUnchecked(m) => client.send_unchecked(&m),
        }
    }
}

impl ServerCommand {
    /// Carries the command out on `session`.
    pub fn apply(
        self,
        session: &mut crate::server::ServerSession,
        now: crate::time::Instant,
    ) -> Result<(), crate::session::CommandError> {
        match self {
            ServerCommand::Accept => session.accept(now),
            ServerCommand::Reject => session.reject(now),
            ServerCommand::Run { resource, input } => session.run(now, resource, input).map(|_| ()),
            ServerCommand::Describe { resource } => session.describe(now, resource).map(|_| ()),
            ServerCommand::StartStream {
                resource,
                interval_ms,
            } => session.start_stream(now, resource, interval_ms).map(|_| ()),
            ServerCommand::ReconfigureStream { id, interval_ms } => {
                session.reconfigure_stream(now, id, interval_ms)
            }
            ServerCommand::StopStream { id } => session.stop_stream(now, id),
            ServerCommand::Disconnect { reason } => session.disconnect(now, reason),
            ServerCommand::CloseNow => {
                session.close_now(now);
                Ok(())
            }
            ServerCommand::SendUnchecked(m) => session.send_unchecked(&m),
        }
    }
}
