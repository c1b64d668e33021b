//! The device's resources (spec §6.5.1): names and function types, declared once.

use crate::value::{Map, Text, Value};

/// What RUN does with a resource (the `fn` of DESCRIBE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// fn 1: run it; no input, no output.
    Action,
    /// fn 2: takes an input.
    Input,
    /// fn 3: produces an output.
    Output,
    /// fn 4: takes an input and produces an output.
    InputOutput,
}

impl ResourceKind {
    /// The `fn` number of DESCRIBE.
    pub const fn code(self) -> u32 {
        match self {
            ResourceKind::Action => 1,
            ResourceKind::Input => 2,
            ResourceKind::Output => 3,
            ResourceKind::InputOutput => 4,
        }
    }

    /// Whether RUN hands the payload to the application.
    pub const fn takes_input(self) -> bool {
        matches!(self, ResourceKind::Input | ResourceKind::InputOutput)
    }

    /// Whether RUN answers with a payload.
    pub const fn gives_output(self) -> bool {
        matches!(self, ResourceKind::Output | ResourceKind::InputOutput)
    }
}

/// The declared resources, in declaration order (which DESCRIBE keeps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    entries: Vec<(Text, ResourceKind)>,
}

impl Resources {
    /// No resources.
    pub fn new() -> Self {
        Resources::default()
    }

    /// Declares (or redeclares) a resource.
    pub fn add(&mut self, name: impl Into<Text>, kind: ResourceKind) -> &mut Self {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = kind,
            None => self.entries.push((name, kind)),
        }
        self
    }

    /// Builder form of [`Resources::add`].
    pub fn with(mut self, name: impl Into<Text>, kind: ResourceKind) -> Self {
        self.add(name, kind);
        self
    }

    /// The kind of `name`.
    pub fn kind(&self, name: &str) -> Option<ResourceKind> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| *k)
    }

    /// Every resource in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ResourceKind)> {
        self.entries.iter().map(|(n, k)| (n.as_str(), *k))
    }

    /// The DESCRIBE payload for all resources: `{"name": {"fn": n}, …}` (spec §6.6).
    pub fn describe_all(&self) -> Value {
        let mut map = Map::with_capacity(self.entries.len());
        for (name, kind) in &self.entries {
            let mut descriptor = Map::with_capacity(1);
            descriptor.insert("fn", kind.code());
            map.insert(name.clone(), descriptor);
        }
        Value::Map(map)
    }
}

/// The resource a RUN / DESCRIBE / START_STREAM names: a string, or an array of strings joined
/// with `/` (spec §6.5.1). Anything else names no resource.
pub fn resource_name(value: &Value) -> Option<Text> {
    match value {
        Value::Str(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut name = Text::default();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    name.push('/');
                }
                name.push_str(part.as_str()?);
            }
            Some(name)
        }
        _ => None,
    }
}
