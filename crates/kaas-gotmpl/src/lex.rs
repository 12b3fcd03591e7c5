//! The lexer: template text into text runs and action tokens, as Go's `text/template/parse`.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Text outside actions, trim markers already applied.
    Text(String),
    /// `{{`; comments produce no tokens at all.
    LeftDelim,
    RightDelim,
    Ident(String),
    /// `.name`, the name without the dot.
    Field(String),
    /// `$name` or `$` (empty name is `$` itself), without the `$`.
    Variable(String),
    Dot,
    /// A string literal: its value and its source text.
    Str(String, String),
    /// A character constant: its value and source text.
    Char(char, String),
    Number(String),
    Bool(bool),
    Nil,
    LeftParen,
    RightParen,
    Pipe,
    Declare,
    Assign,
    Comma,
    Keyword(Keyword),
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token in the source.
    pub pos: usize,
    /// Whether spaces separate this token from the previous one inside an action.
    pub space_before: bool,
}

/// A lexing error: the byte offset and what is wrong.
#[derive(Debug)]
pub(crate) struct LexError {
    pub pos: usize,
    pub message: String,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    Lexer {
        src,
        pos: 0,
        out: Vec::new(),
    }
    .run()
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    out: Vec<Token>,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn push(&mut self, tok: Tok, pos: usize, space_before: bool) {
        self.out.push(Token {
            tok,
            pos,
            space_before,
        });
    }

    fn err<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos,
            message: message.into(),
        })
    }

    fn run(mut self) -> Result<Vec<Token>, LexError> {
        let mut trim_next_text = false;
        loop {
            let start = self.pos;
            let found = self.rest().find("{{");
            let end = found.map_or(self.src.len(), |i| start + i);
            let mut text = &self.src[start..end];
            if trim_next_text {
                text = text.trim_start_matches(is_space);
            }
            let Some(_) = found else {
                if !text.is_empty() {
                    self.push(Tok::Text(text.to_owned()), start, false);
                }
                self.push(Tok::Eof, self.src.len(), false);
                return Ok(self.out);
            };
            let after = end + 2;
            let trim_left = self.src[after..].starts_with('-')
                && self.src[after + 1..].chars().next().is_some_and(is_space);
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.push(Tok::Text(text.to_owned()), start, false);
            }
            self.pos = if trim_left { after + 2 } else { after };
            // A comment starts right after the delimiter (and its trim marker).
            if self.rest().starts_with("/*") {
                let Some(close) = self.rest().find("*/") else {
                    return self.err(end, "unclosed comment");
                };
                self.pos += close + 2;
                if self.rest().starts_with(" -}}") {
                    self.pos += 4;
                    trim_next_text = true;
                } else if self.rest().starts_with("}}") {
                    self.pos += 2;
                    trim_next_text = false;
                } else {
                    return self.err(end, "comment ends before closing delimiter");
                }
                continue;
            }
            self.push(Tok::LeftDelim, end, false);
            trim_next_text = self.lex_action(end)?;
        }
    }

    /// Lexes one action up to and including `}}`; returns whether it ended with ` -}}`.
    fn lex_action(&mut self, open: usize) -> Result<bool, LexError> {
        let mut depth = 0usize;
        let mut space = true;
        loop {
            if self.rest().starts_with("}}") {
                if depth > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                self.push(Tok::RightDelim, self.pos, space);
                self.pos += 2;
                return Ok(false);
            }
            let Some(c) = self.peek() else {
                return self.err(open, "unclosed action");
            };
            if is_space(c) {
                if self.rest().starts_with(&format!("{c}-}}}}")) {
                    if depth > 0 {
                        return self.err(self.pos, "unclosed left paren");
                    }
                    self.push(Tok::RightDelim, self.pos + 1, true);
                    self.pos += 4;
                    return Ok(true);
                }
                self.pos += c.len_utf8();
                space = true;
                continue;
            }
            let pos = self.pos;
            match c {
                '|' => {
                    self.pos += 1;
                    self.push(Tok::Pipe, pos, space);
                }
                '(' => {
                    self.pos += 1;
                    depth += 1;
                    self.push(Tok::LeftParen, pos, space);
                }
                ')' => {
                    if depth == 0 {
                        return self.err(pos, "unexpected right paren");
                    }
                    depth -= 1;
                    self.pos += 1;
                    self.push(Tok::RightParen, pos, space);
                    self.lex_attached_fields()?;
                }
                ',' => {
                    self.pos += 1;
                    self.push(Tok::Comma, pos, space);
                }
                ':' => {
                    if self.rest().starts_with(":=") {
                        self.pos += 2;
                        self.push(Tok::Declare, pos, space);
                    } else {
                        return self.err(pos, "expected :=");
                    }
                }
                '=' => {
                    self.pos += 1;
                    self.push(Tok::Assign, pos, space);
                }
                '"' => {
                    let (value, raw) = self.lex_quoted('"')?;
                    self.push(Tok::Str(value, raw), pos, space);
                }
                '`' => {
                    let body = &self.rest()[1..];
                    let Some(close) = body.find('`') else {
                        return self.err(pos, "unterminated raw quoted string");
                    };
                    let value = body[..close].replace('\r', "");
                    let raw = self.src[pos..pos + close + 2].to_owned();
                    self.pos += close + 2;
                    self.push(Tok::Str(value, raw), pos, space);
                }
                '\'' => {
                    let (value, raw) = self.lex_quoted('\'')?;
                    let mut chars = value.chars();
                    let (Some(ch), None) = (chars.next(), chars.next()) else {
                        return self.err(pos, format!("malformed character constant: {raw}"));
                    };
                    self.push(Tok::Char(ch, raw), pos, space);
                }
                '$' => {
                    self.pos += 1;
                    let name = self.take_alnum();
                    self.push(Tok::Variable(name), pos, space);
                    self.lex_attached_fields()?;
                }
                '.' => {
                    let next = self.rest()[1..].chars().next();
                    if next.is_some_and(|n| n.is_ascii_digit()) {
                        self.lex_number(pos, space)?;
                    } else {
                        self.pos += 1;
                        let name = self.take_alnum();
                        if name.is_empty() {
                            self.push(Tok::Dot, pos, space);
                        } else {
                            self.push(Tok::Field(name), pos, space);
                            self.lex_attached_fields()?;
                        }
                    }
                }
                '+' | '-' | '0'..='9' => self.lex_number(pos, space)?,
                c if is_alnum(c) => {
                    let word = self.take_alnum();
                    let tok = match word.as_str() {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        "block" => Tok::Keyword(Keyword::Block),
                        "break" => Tok::Keyword(Keyword::Break),
                        "continue" => Tok::Keyword(Keyword::Continue),
                        "define" => Tok::Keyword(Keyword::Define),
                        "else" => Tok::Keyword(Keyword::Else),
                        "end" => Tok::Keyword(Keyword::End),
                        "if" => Tok::Keyword(Keyword::If),
                        "range" => Tok::Keyword(Keyword::Range),
                        "template" => Tok::Keyword(Keyword::Template),
                        "with" => Tok::Keyword(Keyword::With),
                        _ => Tok::Ident(word),
                    };
                    self.push(tok, pos, space);
                    self.check_terminator()?;
                }
                other => {
                    return self.err(pos, format!("unexpected {other:?} in command"));
                }
            }
            space = false;
        }
    }

    fn take_alnum(&mut self) -> String {
        let len = self
            .rest()
            .char_indices()
            .find(|&(_, c)| !is_alnum(c))
            .map_or(self.rest().len(), |(i, _)| i);
        let word = self.rest()[..len].to_owned();
        self.pos += len;
        word
    }

    /// `.a.b` right after a variable, field or closing paren: a field chain.
    fn lex_attached_fields(&mut self) -> Result<(), LexError> {
        while self.rest().starts_with('.') && self.rest()[1..].chars().next().is_some_and(is_alnum)
        {
            let pos = self.pos;
            self.pos += 1;
            let name = self.take_alnum();
            self.push(Tok::Field(name), pos, false);
        }
        self.check_terminator()
    }

    fn check_terminator(&self) -> Result<(), LexError> {
        match self.peek() {
            None => Ok(()),
            Some(c) if is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(') => Ok(()),
            Some(_) if self.rest().starts_with("}}") => Ok(()),
            Some(c) => self.err(self.pos, format!("bad character {c:?}")),
        }
    }

    fn lex_number(&mut self, pos: usize, space: bool) -> Result<(), LexError> {
        let rest = self.rest();
        let mut len = 0;
        let bytes = rest.as_bytes();
        if matches!(bytes.first(), Some(b'+' | b'-')) {
            len += 1;
        }
        let mut digits: &[u8] = b"0123456789_";
        let mut exp: &[u8] = b"eE";
        if bytes.get(len) == Some(&b'0') {
            match bytes.get(len + 1) {
                Some(b'x' | b'X') => {
                    len += 2;
                    digits = b"0123456789abcdefABCDEF_";
                    exp = b"pP";
                }
                Some(b'o' | b'O') => {
                    len += 2;
                    digits = b"01234567_";
                    exp = b"";
                }
                Some(b'b' | b'B') => {
                    len += 2;
                    digits = b"01_";
                    exp = b"";
                }
                _ => {}
            }
        }
        while bytes.get(len).is_some_and(|b| digits.contains(b)) {
            len += 1;
        }
        if bytes.get(len) == Some(&b'.') {
            len += 1;
            while bytes.get(len).is_some_and(|b| digits.contains(b)) {
                len += 1;
            }
        }
        if !exp.is_empty() && bytes.get(len).is_some_and(|b| exp.contains(b)) {
            len += 1;
            if matches!(bytes.get(len), Some(b'+' | b'-')) {
                len += 1;
            }
            while bytes
                .get(len)
                .is_some_and(|b| b.is_ascii_digit() || *b == b'_')
            {
                len += 1;
            }
        }
        let text = rest[..len].to_owned();
        self.pos += len;
        if self.peek().is_some_and(is_alnum) || text.trim_start_matches(['+', '-']).is_empty() {
            let mut bad = text;
            bad.push_str(&self.take_alnum());
            return self.err(pos, format!("bad number syntax: {bad:?}"));
        }
        self.push(Tok::Number(text), pos, space);
        Ok(())
    }

    /// A `"` or `'` quoted literal with Go escapes: its value and its source text.
    fn lex_quoted(&mut self, quote: char) -> Result<(String, String), LexError> {
        let start = self.pos;
        let mut chars = self.rest().char_indices().skip(1).peekable();
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.pos = start + i + 1;
                    return Ok((value, self.src[start..self.pos].to_owned()));
                }
                '\n' => break,
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    match e {
                        'a' => value.push('\x07'),
                        'b' => value.push('\x08'),
                        'f' => value.push('\x0c'),
                        'n' => value.push('\n'),
                        'r' => value.push('\r'),
                        't' => value.push('\t'),
                        'v' => value.push('\x0b'),
                        '\\' => value.push('\\'),
                        '"' if quote == '"' => value.push('"'),
                        '\'' if quote == '\'' => value.push('\''),
                        'x' | 'u' | 'U' => {
                            let n = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let mut code = 0u32;
                            for _ in 0..n {
                                let d = chars.next().and_then(|(_, d)| d.to_digit(16));
                                let Some(d) = d else {
                                    return self.err(start, "invalid syntax in quoted string");
                                };
                                code = code * 16 + d;
                            }
                            if e == 'x' {
                                // \x is a byte; bytes above 0x7f only make sense in
                                // sequences, which Go templates rarely use.
                                value.push(char::from(code as u8));
                            } else {
                                let Some(ch) = char::from_u32(code) else {
                                    return self.err(start, "invalid syntax in quoted string");
                                };
                                value.push(ch);
                            }
                        }
                        '0'..='7' => {
                            let mut code = e.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                let d = chars.next().and_then(|(_, d)| d.to_digit(8));
                                let Some(d) = d else {
                                    return self.err(start, "invalid syntax in quoted string");
                                };
                                code = code * 8 + d;
                            }
                            value.push(char::from(code as u8));
                        }
                        _ => return self.err(start, "invalid syntax in quoted string"),
                    }
                }
                c => value.push(c),
            }
        }
        let what = if quote == '"' {
            "unterminated quoted string"
        } else {
            "unterminated character constant"
        };
        self.err(start, what)
    }
}
