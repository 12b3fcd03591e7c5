//! The parser: tokens into trees, one per template name, as Go's `text/template/parse`.

use std::fmt;
use std::sync::Arc;

use crate::lex::{Keyword, LexError, Tok, Token, lex};

/// A parsed template: a file's body or a `define`.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The name templates call it by.
    pub name: String,
    /// The file it was parsed from (positions in errors refer to it).
    pub parse_name: String,
    pub source: Arc<str>,
    pub root: Vec<Node>,
}

impl Tree {
    /// Whether the tree has only whitespace text (Go keeps an older definition then).
    pub fn is_empty(&self) -> bool {
        self.root.iter().all(|n| match n {
            Node::Text(t) => t.trim().is_empty(),
            _ => false,
        })
    }

    /// Line (1-based) and column (0-based byte offset in the line) of a position.
    pub fn line_col(&self, pos: usize) -> (usize, usize) {
        line_col(&self.source, pos)
    }
}

pub(crate) fn line_col(source: &str, pos: usize) -> (usize, usize) {
    let before = &source[..pos.min(source.len())];
    let line = 1 + before.matches('\n').count();
    let col = match before.rfind('\n') {
        Some(i) => pos - (i + 1),
        None => pos,
    };
    (line, col)
}

#[derive(Debug)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

/// The common shape of `if`, `with` and `range`.
#[derive(Debug)]
pub(crate) struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    /// `=` rather than `:=`.
    pub is_assign: bool,
    /// Declared or assigned variables, without `$`.
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Debug)]
pub(crate) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub(crate) enum Arg {
    Dot,
    Nil,
    Bool(bool),
    /// Source text and value.
    Str(String, String),
    Number(Number),
    /// `.a.b`
    Field(usize, Vec<String>),
    /// `$x.a.b` (`$` is the empty name)
    Variable(usize, String, Vec<String>),
    /// A function name.
    Ident(usize, String),
    /// `(pipeline)`
    Pipe(Box<Pipe>),
    /// `(pipeline).a.b`
    Chain(usize, Box<Arg>, Vec<String>),
}

/// A number constant as Go's template parser classifies it.
#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// A character constant such as `'a'`.
    pub is_char: bool,
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            let vars: Vec<String> = self.decl.iter().map(|v| format!("${v}")).collect();
            let op = if self.is_assign { "=" } else { ":=" };
            write!(f, "{} {op} ", vars.join(", "))?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                write!(f, " | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            match a {
                Arg::Pipe(p) => write!(f, "({p})")?,
                other => write!(f, "{other}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Dot => write!(f, "."),
            Arg::Nil => write!(f, "nil"),
            Arg::Bool(b) => write!(f, "{b}"),
            Arg::Str(raw, _) => write!(f, "{raw}"),
            Arg::Number(n) => write!(f, "{}", n.text),
            Arg::Field(_, names) => {
                for n in names {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
            Arg::Variable(_, name, fields) => {
                write!(f, "${name}")?;
                for n in fields {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
            Arg::Ident(_, name) => write!(f, "{name}"),
            Arg::Pipe(p) => write!(f, "{p}"),
            Arg::Chain(_, node, fields) => {
                match node.as_ref() {
                    Arg::Pipe(p) => write!(f, "({p})")?,
                    other => write!(f, "{other}")?,
                }
                for n in fields {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
        }
    }
}

/// A parse error: byte offset and message.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub pos: usize,
    pub message: String,
}

impl From<LexError> for ParseError {
    fn from(e: LexError) -> Self {
        ParseError {
            pos: e.pos,
            message: e.message,
        }
    }
}

/// The trees of one source: its own body (named `name`) and its `define`s.
pub(crate) fn parse(
    name: &str,
    source: &str,
    is_function: &dyn Fn(&str) -> bool,
) -> Result<Vec<Tree>, ParseError> {
    let source: Arc<str> = Arc::from(source);
    let tokens = lex(&source)?;
    let mut p = Parser {
        tokens,
        i: 0,
        vars: vec!["".to_owned()],
        range_depth: 0,
        is_function,
        defines: Vec::new(),
    };
    let root = p.parse_top()?;
    let mut trees = vec![Tree {
        name: name.to_owned(),
        parse_name: name.to_owned(),
        source: source.clone(),
        root,
    }];
    for (def_name, list) in p.defines {
        trees.push(Tree {
            name: def_name,
            parse_name: name.to_owned(),
            source: source.clone(),
            root: list,
        });
    }
    Ok(trees)
}

#[allow(clippy::enum_variant_names)] // named after the actions that end a list
enum End {
    End,
    Else(usize),
    Eof,
}

struct Parser<'f> {
    tokens: Vec<Token>,
    i: usize,
    /// Declared variables in scope, for "undefined variable" errors.
    vars: Vec<String>,
    range_depth: usize,
    is_function: &'f dyn Fn(&str) -> bool,
    defines: Vec<(String, Vec<Node>)>,
}

type PResult<T> = Result<T, ParseError>;

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.i.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.i + n).min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.tokens.len() {
            self.i += 1;
        }
        t
    }

    fn err<T>(&self, pos: usize, message: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            pos,
            message: message.into(),
        })
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> PResult<T> {
        let what = describe(&t.tok);
        self.err(t.pos, format!("unexpected {what} in {context}"))
    }

    fn parse_top(&mut self) -> PResult<Vec<Node>> {
        let mut list = Vec::new();
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Eof => return Ok(list),
                Tok::LeftDelim if matches!(self.peek_at(1).tok, Tok::Keyword(Keyword::Define)) => {
                    self.i += 2;
                    self.parse_define(t.pos)?;
                }
                _ => match self.parse_item()? {
                    Ok(node) => list.push(node),
                    Err(End::Eof) => return Ok(list),
                    Err(End::End) => return self.err(t.pos, "unexpected {{end}}"),
                    Err(End::Else(pos)) => return self.err(pos, "unexpected {{else}}"),
                },
            }
        }
    }

    fn expect_right(&mut self, context: &str) -> PResult<()> {
        let t = self.next();
        match t.tok {
            Tok::RightDelim => Ok(()),
            _ => self.unexpected(&t, context),
        }
    }

    fn parse_template_name(&mut self, context: &str) -> PResult<String> {
        let t = self.next();
        match t.tok {
            Tok::Str(value, _) => Ok(value),
            _ => self.unexpected(&t, context),
        }
    }

    fn parse_define(&mut self, pos: usize) -> PResult<()> {
        let name = self.parse_template_name("define clause")?;
        self.expect_right("define clause")?;
        let saved = std::mem::replace(&mut self.vars, vec!["".to_owned()]);
        let (list, end) = self.parse_list()?;
        self.vars = saved;
        match end {
            End::End => {}
            End::Else(p) => return self.err(p, "unexpected {{else}} in define"),
            End::Eof => return self.err(pos, format!("unexpected EOF in define {name:?}")),
        }
        self.defines.push((name, list));
        Ok(())
    }

    /// A list of nodes up to `{{end}}`, `{{else}}` (its tokens after `else` left unread)
    /// or the end of input.
    fn parse_list(&mut self) -> PResult<(Vec<Node>, End)> {
        let mut list = Vec::new();
        loop {
            match self.parse_item()? {
                Ok(node) => list.push(node),
                Err(end) => return Ok((list, end)),
            }
        }
    }

    fn parse_item(&mut self) -> PResult<Result<Node, End>> {
        let t = self.next();
        match t.tok {
            Tok::Eof => Ok(Err(End::Eof)),
            Tok::Text(s) => Ok(Ok(Node::Text(s))),
            Tok::LeftDelim => self.parse_action(t.pos),
            _ => self.unexpected(&t, "input"),
        }
    }

    fn parse_action(&mut self, open: usize) -> PResult<Result<Node, End>> {
        let t = self.peek().clone();
        let Tok::Keyword(kw) = t.tok else {
            let pipe = self.parse_pipeline("command", true)?;
            return Ok(Ok(Node::Action(pipe)));
        };
        self.i += 1;
        let node = match kw {
            Keyword::End => {
                self.expect_right("end")?;
                return Ok(Err(End::End));
            }
            Keyword::Else => return Ok(Err(End::Else(t.pos))),
            Keyword::If => Node::If(self.parse_branch(t.pos, "if")?),
            Keyword::With => Node::With(self.parse_branch(t.pos, "with")?),
            Keyword::Range => Node::Range(self.parse_branch(t.pos, "range")?),
            Keyword::Break | Keyword::Continue => {
                let word = if kw == Keyword::Break {
                    "break"
                } else {
                    "continue"
                };
                if self.range_depth == 0 {
                    return self.err(t.pos, format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                self.expect_right(word)?;
                if kw == Keyword::Break {
                    Node::Break
                } else {
                    Node::Continue
                }
            }
            Keyword::Template => {
                let name = self.parse_template_name("template clause")?;
                let pipe = if matches!(self.peek().tok, Tok::RightDelim) {
                    self.i += 1;
                    None
                } else {
                    Some(self.parse_pipeline("template clause", false)?)
                };
                Node::Template {
                    pos: t.pos,
                    name,
                    pipe,
                }
            }
            Keyword::Block => {
                let name = self.parse_template_name("block clause")?;
                let pipe = self.parse_pipeline("block clause", false)?;
                let saved = std::mem::replace(&mut self.vars, vec!["".to_owned()]);
                let (list, end) = self.parse_list()?;
                self.vars = saved;
                if !matches!(end, End::End) {
                    return self.err(open, "unexpected EOF or {{else}} in block clause");
                }
                self.defines.push((name.clone(), list));
                Node::Template {
                    pos: t.pos,
                    name,
                    pipe: Some(pipe),
                }
            }
            Keyword::Define => return self.err(t.pos, "unexpected <define> in command"),
        };
        Ok(Ok(node))
    }

    /// `if`, `with` and `range` with their `else` chains.
    fn parse_branch(&mut self, pos: usize, context: &str) -> PResult<Branch> {
        let mark = self.vars.len();
        let pipe = self.parse_pipeline(context, false)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.parse_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            End::End => None,
            End::Eof => return self.err(pos, format!("unexpected EOF in {context}")),
            End::Else(else_pos) => {
                // `{{else if ...}}` and `{{else with ...}}` nest a branch in the else.
                let chained = match self.peek().tok {
                    Tok::Keyword(Keyword::If) if context == "if" => Some("if"),
                    Tok::Keyword(Keyword::With) if context == "with" => Some("with"),
                    _ => None,
                };
                if let Some(kind) = chained {
                    let t = self.next();
                    let inner = self.parse_branch(t.pos, kind)?;
                    let node = if kind == "if" {
                        Node::If(inner)
                    } else {
                        Node::With(inner)
                    };
                    Some(vec![node])
                } else {
                    self.expect_right("else")?;
                    let (else_list, end) = self.parse_list()?;
                    match end {
                        End::End => {}
                        End::Else(p) => return self.err(p, "expected end; found {{else}}"),
                        End::Eof => {
                            return self.err(else_pos, format!("unexpected EOF in {context}"));
                        }
                    }
                    Some(else_list)
                }
            }
        };
        self.vars.truncate(mark);
        Ok(Branch {
            pos,
            pipe,
            list,
            else_list,
        })
    }

    /// A pipeline up to `}}` (or `)` when `in_parens`).
    fn parse_pipeline(&mut self, context: &str, _action: bool) -> PResult<Pipe> {
        self.parse_pipe_until(context, false)
    }

    fn parse_pipe_until(&mut self, context: &str, in_parens: bool) -> PResult<Pipe> {
        let pos = self.peek().pos;
        let mut decl = Vec::new();
        let mut is_assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $v :=`.
        if let Tok::Variable(name) = &self.peek().tok {
            let name = name.clone();
            match self.peek_at(1).tok {
                Tok::Declare | Tok::Assign => {
                    is_assign = matches!(self.peek_at(1).tok, Tok::Assign);
                    self.i += 2;
                    decl.push(name);
                }
                Tok::Comma if context == "range" => {
                    if let (Tok::Variable(second), Tok::Declare | Tok::Assign) =
                        (&self.peek_at(2).tok, &self.peek_at(3).tok)
                    {
                        is_assign = matches!(self.peek_at(3).tok, Tok::Assign);
                        decl.push(name);
                        decl.push(second.clone());
                        self.i += 4;
                    } else {
                        return self.err(self.peek_at(1).pos, "too many declarations in range");
                    }
                }
                _ => {}
            }
        }
        for v in &decl {
            if is_assign {
                if !self.vars.contains(v) {
                    return self.err(pos, format!("undefined variable \"${v}\""));
                }
            } else {
                self.vars.push(v.clone());
            }
        }
        let mut cmds = Vec::new();
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::RightDelim if !in_parens => {
                    self.i += 1;
                    break;
                }
                Tok::RightParen if in_parens => {
                    self.i += 1;
                    break;
                }
                _ => {
                    let cmd = self.parse_command(context, in_parens)?;
                    cmds.push(cmd);
                    if matches!(self.peek().tok, Tok::Pipe) {
                        self.i += 1;
                    }
                }
            }
        }
        if cmds.is_empty() {
            return self.err(pos, format!("missing value for {context}"));
        }
        for (i, c) in cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Number(_) | Arg::Str(..))
            ) {
                return self.err(
                    c.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(Pipe {
            is_assign,
            decl,
            cmds,
        })
    }

    fn parse_command(&mut self, context: &str, in_parens: bool) -> PResult<Command> {
        let pos = self.peek().pos;
        let mut args = Vec::new();
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::RightDelim | Tok::RightParen | Tok::Pipe => break,
                _ => {}
            }
            if !args.is_empty() && !t.space_before {
                return self.err(t.pos, format!("missing space before {}", describe(&t.tok)));
            }
            args.push(self.parse_operand(context)?);
        }
        if args.is_empty() {
            let t = self.peek().clone();
            let _ = in_parens;
            return self.err(t.pos, format!("missing value for {context}"));
        }
        if args.len() > 1
            && matches!(
                args[0],
                Arg::Bool(_) | Arg::Nil | Arg::Number(_) | Arg::Str(..)
            )
        {
            return self.err(
                pos,
                format!("can't give argument to non-function {}", args[0]),
            );
        }
        if args.len() == 1 && matches!(args[0], Arg::Nil) {
            return self.err(pos, "nil is not a command");
        }
        Ok(Command { pos, args })
    }

    fn parse_operand(&mut self, context: &str) -> PResult<Arg> {
        let t = self.next();
        let arg = match t.tok {
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Str(value, raw) => Arg::Str(raw, value),
            Tok::Char(c, raw) => Arg::Number(Number {
                text: raw,
                int: Some(c as i64),
                float: Some(c as u32 as f64),
                is_char: true,
            }),
            Tok::Number(text) => Arg::Number(self.number(t.pos, text)?),
            Tok::Field(name) => {
                // Go positions a chain `.a.b` at its second field.
                let chain_pos = self.peek().pos;
                let mut names = vec![name];
                let more = self.attached_fields();
                let pos = if more.is_empty() { t.pos } else { chain_pos };
                names.extend(more);
                Arg::Field(pos, names)
            }
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return self.err(t.pos, format!("undefined variable \"${name}\""));
                }
                let chain_pos = self.peek().pos;
                let fields = self.attached_fields();
                let pos = if fields.is_empty() { t.pos } else { chain_pos };
                Arg::Variable(pos, name, fields)
            }
            Tok::Ident(name) => {
                if !(self.is_function)(&name) {
                    return self.err(t.pos, format!("function {name:?} not defined"));
                }
                Arg::Ident(t.pos, name)
            }
            Tok::LeftParen => {
                let pipe = self.parse_pipe_until(context, true)?;
                let chain_pos = self.peek().pos;
                let fields = self.attached_fields();
                let node = Arg::Pipe(Box::new(pipe));
                if fields.is_empty() {
                    node
                } else {
                    Arg::Chain(chain_pos, Box::new(node), fields)
                }
            }
            _ => return self.unexpected(&t, context),
        };
        Ok(arg)
    }

    fn attached_fields(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Tok::Field(name) = &self.peek().tok {
            if self.peek().space_before {
                break;
            }
            out.push(name.clone());
            self.i += 1;
        }
        out
    }

    fn number(&self, pos: usize, text: String) -> PResult<Number> {
        let clean = text.replace('_', "");
        let (neg, body) = match clean.strip_prefix('-') {
            Some(b) => (true, b.to_owned()),
            None => (false, clean.trim_start_matches('+').to_owned()),
        };
        let lower = body.to_ascii_lowercase();
        let int = if let Some(h) = lower.strip_prefix("0x") {
            i64::from_str_radix(h, 16).ok()
        } else if let Some(o) = lower.strip_prefix("0o") {
            i64::from_str_radix(o, 8).ok()
        } else if let Some(b) = lower.strip_prefix("0b") {
            i64::from_str_radix(b, 2).ok()
        } else if lower.len() > 1
            && lower.starts_with('0')
            && lower.bytes().all(|b| b.is_ascii_digit())
        {
            i64::from_str_radix(&lower[1..], 8).ok()
        } else {
            lower.parse::<i64>().ok()
        }
        .map(|i| if neg { -i } else { i });
        let float = if lower.starts_with("0x") {
            int.map(|i| i as f64)
        } else {
            lower.parse::<f64>().ok().map(|f| if neg { -f } else { f })
        };
        if int.is_none() && float.is_none() {
            return self.err(pos, format!("illegal number syntax: {text:?}"));
        }
        Ok(Number {
            text,
            int,
            float,
            is_char: false,
        })
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Text(_) => "text".into(),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::RightDelim => "\"}}\"".into(),
        Tok::Ident(n) => format!("<{n}>"),
        Tok::Field(n) => format!("<.{n}>"),
        Tok::Variable(n) => format!("<${n}>"),
        Tok::Dot => "<.>".into(),
        Tok::Str(_, raw) => raw.clone(),
        Tok::Char(_, raw) => raw.clone(),
        Tok::Number(t) => t.clone(),
        Tok::Bool(b) => b.to_string(),
        Tok::Nil => "<nil>".into(),
        Tok::LeftParen => "\"(\"".into(),
        Tok::RightParen => "\")\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Keyword(k) => format!("<{}>", format!("{k:?}").to_lowercase()),
        Tok::Eof => "EOF".into(),
    }
}
