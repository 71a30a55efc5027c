//! Just enough XML for the Route53 REST-XML protocol.
//!
//! Requests are read into a small element tree (so that the presence of an
//! element, e.g. `MultiValueAnswer`, can be told from its absence, and changes
//! keep their order); responses are written as text with a builder that escapes
//! everything it is given.

use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// The namespace every Route53 2013-04-01 document carries.
pub(crate) const NS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// One element: local name, its text (concatenated, unescaped) and children.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) children: Vec<Element>,
}

impl Element {
    /// The first child called `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`, in document order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child called `name`.
    pub(crate) fn text_of(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text.trim().to_owned())
    }
}

/// Parses a whole document into its root element; `Err` says what is wrong.
pub(crate) fn parse(body: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err("content after the root element".to_owned());
            }
            Event::Start(start) => {
                let name = start.local_name().into_inner().to_owned();
                stack.push(Element {
                    name,
                    ..Element::default()
                });
            }
            Event::Empty(start) => {
                let name = start.local_name().into_inner().to_owned();
                let element = Element {
                    name,
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(text) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text.xml10_content());
                } else if !text.xml10_content().trim().is_empty() {
                    return Err("text outside the root element".to_owned());
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&data.into_inner());
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = if reference.is_char_ref() {
                    reference
                        .resolve_char_ref()
                        .map_err(|e| e.to_string())?
                        .map(String::from)
                } else {
                    quick_xml::escape::resolve_xml_entity(&reference.xml10_content())
                        .map(str::to_owned)
                };
                let resolved = resolved
                    .ok_or_else(|| format!("unknown entity &{};", reference.xml10_content()))?;
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err("DOCTYPE is not allowed".to_owned()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("unexpected end of document".to_owned());
    }
    root.ok_or_else(|| "the document is empty".to_owned())
}

/// Builds a response document; every text is escaped.
pub(crate) struct Writer {
    out: String,
}

impl Writer {
    /// Starts a document whose root element is `root`, in the Route53 namespace.
    pub(crate) fn new(root: &str) -> Writer {
        let mut out = String::from("<?xml version=\"1.0\"?>\n");
        out.push_str(&format!("<{root} xmlns=\"{NS}\">"));
        Writer { out }
    }

    pub(crate) fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    pub(crate) fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name>text</name>`.
    pub(crate) fn leaf(&mut self, name: &str, text: impl AsRef<str>) -> &mut Self {
        self.open(name);
        self.out.push_str(&quick_xml::escape::escape(text.as_ref()));
        self.close(name)
    }

    /// Closes the root element and returns the document.
    pub(crate) fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_elements_with_entities_and_order() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
            <R xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
              <A>one &amp; &#50;</A><B/><A><![CDATA[<three>]]></A>
            </R>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "R");
        let texts: Vec<&str> = root.all("A").map(|a| a.text.as_str()).collect();
        assert_eq!(texts, ["one & 2", "<three>"]);
        assert!(root.child("B").is_some());
        assert!(root.child("C").is_none());
    }

    #[test]
    fn refuses_broken_documents() {
        assert!(parse("<A><B></A>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<A/><B/>").is_err());
        assert!(parse("<!DOCTYPE x><A/>").is_err());
    }

    #[test]
    fn writer_escapes() {
        let mut w = Writer::new("R");
        w.leaf("V", "\"a\" <b> & c");
        let doc = w.finish("R");
        assert!(
            doc.contains("<V>&quot;a&quot; &lt;b&gt; &amp; c</V>"),
            "{doc}"
        );
        assert_eq!(parse(&doc).unwrap().text_of("V").unwrap(), "\"a\" <b> & c");
    }
}
