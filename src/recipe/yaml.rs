//! A YAML document as a tree of nodes that remember where they came from.
//!
//! serde-based loaders stop at the first problem and forget positions; the recipe validator
//! wants every problem with its `line:col`, so it walks this tree instead.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::{HashMap, HashSet};

/// Most nodes a recipe may hold once its aliases are expanded. The largest shipped recipe
/// (`recipes/comprehensive.yml`) has about 1,000; a "billion laughs" document of nested
/// anchors would otherwise grow tenfold per level and exhaust memory.
pub const MAX_NODES: usize = 100_000;
/// Deepest nesting of lists and mappings (shipped recipes reach 5). Bounds the recursion of
/// everything that walks the tree (decoding, cloning, dropping).
pub const MAX_DEPTH: usize = 64;

/// 1-based position in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or an empty value.
    Null,
    /// A scalar. `plain` is false for quoted scalars, which are always strings.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys keep their own node so that an unknown key can be pointed at.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Scalar { value, plain } => {
                if !*plain {
                    "string"
                } else if value.parse::<i64>().is_ok() {
                    "integer"
                } else if value.parse::<f64>().is_ok() {
                    "number"
                } else if matches!(value.as_str(), "true" | "false" | "True" | "False") {
                    "boolean"
                } else {
                    "string"
                }
            }
            NodeKind::Seq(_) => "list",
            NodeKind::Map(_) => "mapping",
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }

    /// Look a key up in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(_, v)| v)
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// A mapping being built: its entries, the key waiting for its value, and which keys came
/// from a merge key (`<<`) so an explicit key can replace them.
struct MapFrame {
    pos: Pos,
    anchor: usize,
    items: Vec<(Node, Node)>,
    pending: Option<Node>,
    /// Scalar key → index in `items`, for every key (merging and overriding stay linear).
    index: HashMap<String, usize>,
    merged: HashSet<String>,
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(MapFrame),
}

impl MapFrame {
    fn insert(&mut self, key: Node, value: Node) {
        // YAML merge keys (`<<: *defaults`, or `<<: [*a, *b]` where earlier maps win) are
        // expanded in place; keys written explicitly in the mapping win over merged ones.
        if key.as_scalar() == Some("<<") {
            let all_maps = match &value.kind {
                NodeKind::Map(_) => true,
                NodeKind::Seq(v) => v.iter().all(|n| matches!(n.kind, NodeKind::Map(_))),
                _ => false,
            };
            if all_maps {
                let maps = match value.kind {
                    NodeKind::Map(m) => vec![m],
                    NodeKind::Seq(v) => v
                        .into_iter()
                        .filter_map(|n| match n.kind {
                            NodeKind::Map(m) => Some(m),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for (k, v) in maps.into_iter().flatten() {
                    let name = k.as_scalar().unwrap_or_default().to_string();
                    if !self.index.contains_key(&name) {
                        self.index.insert(name.clone(), self.items.len());
                        self.merged.insert(name);
                        self.items.push((k, v));
                    }
                }
                return;
            }
            self.items.push((key, value));
            return;
        }
        if let Some(name) = key.as_scalar() {
            if self.merged.remove(name) {
                if let Some(&i) = self.index.get(name) {
                    self.items[i] = (key, value);
                    return;
                }
            }
            self.index
                .entry(name.to_string())
                .or_insert(self.items.len());
        }
        self.items.push((key, value))
    }
}

/// Number of nodes in a tree (a mapping entry counts its key and value).
fn node_count(n: &Node) -> usize {
    1 + match &n.kind {
        NodeKind::Seq(v) => v.iter().map(node_count).sum(),
        NodeKind::Map(m) => m.iter().map(|(k, v)| node_count(k) + node_count(v)).sum(),
        _ => 0,
    }
}

/// Parse one YAML document into a [`Node`]. An empty document is `Null`.
pub fn parse(src: &str) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(src);
    let mut stack: Vec<Frame> = Vec::new();
    // Each anchored node with its node count, so that an alias is priced before it is copied.
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut docs = 0;
    let mut nodes = 0usize;
    for item in &mut parser {
        let (ev, span) = item.map_err(|e| YamlError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: format!("invalid YAML: {}", e.info()),
        })?;
        let pos = pos_of(&span);
        let added = match &ev {
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..) => 1,
            Event::Alias(id) => anchors.get(id).map_or(0, |(_, n)| *n),
            _ => 0,
        };
        nodes = nodes.saturating_add(added);
        if nodes > MAX_NODES {
            let what = if matches!(ev, Event::Alias(_)) {
                "expanding this alias makes"
            } else {
                "at this point"
            };
            return Err(YamlError {
                pos,
                message: format!(
                    "recipe too large: {what} the document more than {MAX_NODES} nodes once \
                     aliases are expanded (the limit guards against alias bombs)"
                ),
            });
        }
        if matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..))
            && stack.len() >= MAX_DEPTH
        {
            return Err(YamlError {
                pos,
                message: format!(
                    "recipe nested too deeply: more than {MAX_DEPTH} levels of lists and mappings"
                ),
            });
        }
        let done: Option<(Node, usize)> = match ev {
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return Err(YamlError {
                        pos,
                        message: "a recipe is one YAML document; found a second `---` document"
                            .into(),
                    });
                }
                None
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = style == ScalarStyle::Plain;
                let kind = if plain && matches!(&*value, "" | "~" | "null" | "Null" | "NULL") {
                    NodeKind::Null
                } else {
                    NodeKind::Scalar {
                        value: value.into_owned(),
                        plain,
                    }
                };
                Some((Node { pos, kind }, anchor))
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((n, _)) => Some((n.clone(), 0)),
                None => {
                    return Err(YamlError {
                        pos,
                        message: "alias refers to an unknown anchor".into(),
                    })
                }
            },
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(pos, anchor, Vec::new()));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(MapFrame {
                    pos,
                    anchor,
                    items: Vec::new(),
                    pending: None,
                    index: HashMap::new(),
                    merged: HashSet::new(),
                }));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(p, a, items)) => Some((
                    Node {
                        pos: p,
                        kind: NodeKind::Seq(items),
                    },
                    a,
                )),
                _ => unreachable!("parser emits balanced events"),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(m)) => Some((
                    Node {
                        pos: m.pos,
                        kind: NodeKind::Map(m.items),
                    },
                    m.anchor,
                )),
                _ => unreachable!("parser emits balanced events"),
            },
            _ => None,
        };
        if let Some((node, anchor)) = done {
            if anchor != 0 {
                let count = node_count(&node);
                anchors.insert(anchor, (node.clone(), count));
            }
            match stack.last_mut() {
                None => root = Some(node),
                Some(Frame::Seq(_, _, items)) => items.push(node),
                Some(Frame::Map(m)) => match m.pending.take() {
                    None => m.pending = Some(node),
                    Some(key) => m.insert(key, node),
                },
            }
        }
    }
    Ok(root.unwrap_or(Node {
        pos: Pos { line: 1, col: 1 },
        kind: NodeKind::Null,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nb:\n  c: [x, 'y']\n").unwrap();
        let (k, v) = &n.as_map().unwrap()[1];
        assert_eq!(k.pos, Pos { line: 2, col: 1 });
        let c = v.get("c").unwrap();
        assert_eq!(c.pos, Pos { line: 3, col: 6 });
        let y = &c.as_seq().unwrap()[1];
        assert_eq!(
            y.kind,
            NodeKind::Scalar {
                value: "y".into(),
                plain: false
            }
        );
    }

    #[test]
    fn anchors_and_merge_keys() {
        let n = parse("d: &d {x: 1, y: 2}\ne:\n  <<: *d\n  y: 3\n").unwrap();
        let e = n.get("e").unwrap();
        assert_eq!(e.get("x").unwrap().as_scalar(), Some("1"));
        assert_eq!(e.get("y").unwrap().as_scalar(), Some("3"));
    }

    #[test]
    fn merge_key_with_a_list_of_maps() {
        let n = parse("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc: {<<: [*a, *b], z: 3}\n").unwrap();
        let c = n.get("c").unwrap();
        assert_eq!(c.get("x").unwrap().as_scalar(), Some("1"));
        assert_eq!(
            c.get("y").unwrap().as_scalar(),
            Some("1"),
            "earlier map wins"
        );
        assert_eq!(
            c.get("z").unwrap().as_scalar(),
            Some("3"),
            "explicit key wins"
        );
    }

    #[test]
    fn merge_key_override_keeps_one_entry() {
        let n = parse("d: &d {x: 1, y: 2}\ne: {<<: *d, x: 5, z: 3}\n").unwrap();
        let e = n.get("e").unwrap().as_map().unwrap();
        let keys: Vec<_> = e.iter().map(|(k, _)| k.as_scalar().unwrap()).collect();
        assert_eq!(keys, ["x", "y", "z"]);
        assert_eq!(n.get("e").unwrap().get("x").unwrap().as_scalar(), Some("5"));
    }

    /// The 631-byte recipe of issue 15 (nine levels of ten aliases each) once used gigabytes.
    #[test]
    fn alias_bomb_is_refused_with_its_location() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let t = std::time::Instant::now();
        let e = parse(&doc).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(e.message.contains("100000 nodes"), "{}", e.message);
        assert!(e.message.contains("alias"), "{}", e.message);
        // Level 4 (10^5 scalars) is the first to cross the limit.
        assert_eq!(e.pos.line, 5, "{e:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        // Flow style (the parser itself stops at 255 flow levels).
        let doc = "[".repeat(200) + &"]".repeat(200);
        let e = parse(&doc).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{}", e.message);
        assert_eq!(e.pos, Pos { line: 1, col: 65 });
        // Block style, which the parser does not bound.
        let doc: String = (0..1000)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect();
        let e = parse(&doc).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{}", e.message);
        assert_eq!(e.pos.line, 65);
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1);
        assert!(e.message.starts_with("invalid YAML"));
    }
}
