//! A YAML document as a tree of nodes that remember where they came from.
//!
//! serde-based loaders stop at the first problem and forget positions; the recipe validator
//! wants every problem with its `line:col`, so it walks this tree instead.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;

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

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Node, Node)>, Option<Node>, Vec<String>),
}

/// Parse one YAML document into a [`Node`]. An empty document is `Null`.
pub fn parse(src: &str) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(src);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut docs = 0;
    for item in &mut parser {
        let (ev, span) = item.map_err(|e| YamlError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: format!("invalid YAML: {}", e.info()),
        })?;
        let pos = pos_of(&span);
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
                Some(n) => Some((n.clone(), 0)),
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
                stack.push(Frame::Map(pos, anchor, Vec::new(), None, Vec::new()));
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
                Some(Frame::Map(p, a, items, _, _)) => Some((
                    Node {
                        pos: p,
                        kind: NodeKind::Map(items),
                    },
                    a,
                )),
                _ => unreachable!("parser emits balanced events"),
            },
            _ => None,
        };
        if let Some((node, anchor)) = done {
            if anchor != 0 {
                anchors.insert(anchor, node.clone());
            }
            match stack.last_mut() {
                None => root = Some(node),
                Some(Frame::Seq(_, _, items)) => items.push(node),
                Some(Frame::Map(_, _, items, pending, merged)) => match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => {
                        // YAML merge keys (`<<: *defaults`) are expanded in place; keys
                        // written explicitly in the mapping win over merged ones.
                        if key.as_scalar() == Some("<<") {
                            if let NodeKind::Map(m) = node.kind {
                                for (k, v) in m {
                                    let name = k.as_scalar().unwrap_or_default().to_string();
                                    if !items.iter().any(|(ek, _)| ek.as_scalar() == Some(&name)) {
                                        merged.push(name);
                                        items.push((k, v));
                                    }
                                }
                                continue;
                            }
                        }
                        if let Some(name) = key.as_scalar() {
                            if let Some(i) = merged.iter().position(|m| m == name) {
                                merged.remove(i);
                                items.retain(|(ek, _)| ek.as_scalar() != Some(name));
                            }
                        }
                        items.push((key, node))
                    }
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
    fn syntax_error_has_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1);
        assert!(e.message.starts_with("invalid YAML"));
    }
}
