package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CanonicalTagV2 starts the signed message of a version 2 record.
const CanonicalTagV2 = "hallrate-record-v2"

// SigV2 is the sigv of records signed over [CanonicalJSON]; records
// without sigv are version 1 (see [Press.Canonical]).
const SigV2 = 2

// maxSafeInt is the largest integer every JSON implementation reads
// exactly (2^53-1); the canonical form refuses larger numbers.
const maxSafeInt = 1<<53 - 1

// ErrNotCanonical is wrapped by [CanonicalJSON] for input it cannot put in
// canonical form.
var ErrNotCanonical = errors.New("record: not canonicalisable")

// CanonicalJSON writes the JSON object obj in the canonical form of
// version 2, leaving out its top-level members named in skip:
//
//   - no whitespace between tokens;
//   - object members sorted by name, comparing names as sequences of
//     Unicode code points (which is the order of their UTF-8 bytes);
//     a name twice in one object is an error;
//   - strings between double quotes, with `"` written as \" and `\` as \\,
//     U+0008, U+0009, U+000A, U+000C and U+000D as \b \t \n \f \r, the other
//     code points below U+0020 as \u00XX with lower-case hex digits, and
//     every other code point as itself in UTF-8 (no \u escapes, "/" not
//     escaped); a string that is not valid Unicode is an error;
//   - numbers must be integers from -(2^53-1) to 2^53-1 and are written in
//     decimal, with a "-" for negatives, no "+", no leading zeros, no
//     fraction and no exponent (so 5, 5.0 and 5e0 all become 5; 5.5 is an
//     error);
//   - true, false and null as themselves; arrays in their order.
//
// It is the JSON Canonicalization Scheme (RFC 8785) restricted to integers,
// which is what Python's json.dumps(obj, sort_keys=True,
// separators=(",", ":"), ensure_ascii=False) writes for such objects.
func CanonicalJSON(obj []byte, skip ...string) ([]byte, error) {
	// The decoder would replace what is not Unicode with U+FFFD, which
	// other languages' readers refuse: refuse it first.
	if !utf8.Valid(obj) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrNotCanonical)
	}
	c := canon{in: obj, out: make([]byte, 0, len(obj))}
	c.space()
	if c.pos >= len(c.in) || c.in[c.pos] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrNotCanonical)
	}
	if err := c.object(skip, 0); err != nil {
		if errors.Is(err, ErrNotCanonical) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	c.space()
	if c.pos != len(c.in) {
		return nil, fmt.Errorf("%w: data after the object", ErrNotCanonical)
	}
	return c.out, nil
}

// maxDepth bounds the nesting of arrays and objects, as encoding/json
// does.
const maxDepth = 10000

// canon reads JSON from in, at pos, and writes its canonical form to out:
// one pass over the bytes, where encoding/json's token reader takes four
// times as long (it is on the way of every press: the record is signed
// over this form).
type canon struct {
	in  []byte
	pos int
	out []byte
}

func (c *canon) space() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// expect takes the byte b after any space.
func (c *canon) expect(b byte) error {
	c.space()
	if c.pos >= len(c.in) || c.in[c.pos] != b {
		return c.unexpected(fmt.Sprintf("%q", b))
	}
	c.pos++
	return nil
}

func (c *canon) unexpected(want string) error {
	if c.pos >= len(c.in) {
		return fmt.Errorf("unexpected end of input, want %s", want)
	}
	return fmt.Errorf("unexpected %q at offset %d, want %s", c.in[c.pos], c.pos, want)
}

type member struct {
	name string
	val  []byte
}

// object writes the object at pos ('{' not yet taken), leaving out the
// members named in skip.
func (c *canon) object(skip []string, depth int) error {
	if depth >= maxDepth {
		return errors.New("nested too deep")
	}
	if err := c.expect('{'); err != nil {
		return err
	}
	var ms []member
	c.space()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, "{}"...)
		return nil
	}
	for {
		c.space()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return c.unexpected("a member name")
		}
		name, err := c.str()
		if err != nil {
			return err
		}
		if slices.ContainsFunc(ms, func(m member) bool { return m.name == name }) {
			return fmt.Errorf("member %q twice", name)
		}
		if err := c.expect(':'); err != nil {
			return err
		}
		// The value is written after what is written so far, then moved
		// to its member.
		mark := len(c.out)
		if err := c.value(depth + 1); err != nil {
			return err
		}
		if !slices.Contains(skip, name) {
			ms = append(ms, member{name, slices.Clone(c.out[mark:])})
		}
		c.out = c.out[:mark]
		c.space()
		if c.pos < len(c.in) && c.in[c.pos] == ',' {
			c.pos++
			continue
		}
		if err := c.expect('}'); err != nil {
			return err
		}
		break
	}
	// Go compares strings bytewise: UTF-8 byte order is code point order.
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.name, b.name) })
	c.out = append(c.out, '{')
	for i, m := range ms {
		if i > 0 {
			c.out = append(c.out, ',')
		}
		c.out = appendCanonString(c.out, m.name)
		c.out = append(c.out, ':')
		c.out = append(c.out, m.val...)
	}
	c.out = append(c.out, '}')
	return nil
}

// value writes the value at pos.
func (c *canon) value(depth int) error {
	c.space()
	if c.pos >= len(c.in) {
		return c.unexpected("a value")
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		return c.object(nil, depth)
	case b == '[':
		if depth >= maxDepth {
			return errors.New("nested too deep")
		}
		c.pos++
		c.out = append(c.out, '[')
		c.space()
		if c.pos < len(c.in) && c.in[c.pos] == ']' {
			c.pos++
			c.out = append(c.out, ']')
			return nil
		}
		for n := 0; ; n++ {
			if n > 0 {
				c.out = append(c.out, ',')
			}
			if err := c.value(depth + 1); err != nil {
				return err
			}
			c.space()
			if c.pos < len(c.in) && c.in[c.pos] == ',' {
				c.pos++
				continue
			}
			if err := c.expect(']'); err != nil {
				return err
			}
			c.out = append(c.out, ']')
			return nil
		}
	case b == '"':
		s, err := c.str()
		if err != nil {
			return err
		}
		c.out = appendCanonString(c.out, s)
		return nil
	case b == '-' || (b >= '0' && b <= '9'):
		lit, err := c.number()
		if err != nil {
			return err
		}
		n, err := canonNumber(json.Number(lit))
		if err != nil {
			return err
		}
		c.out = append(c.out, n...)
		return nil
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(c.in[c.pos:], []byte(lit)) {
			c.pos += len(lit)
			c.out = append(c.out, lit...)
			return nil
		}
	}
	return c.unexpected("a value")
}

// number takes a number literal as JSON writes them.
func (c *canon) number() (string, error) {
	start := c.pos
	digits := func() int {
		n := 0
		for c.pos < len(c.in) && c.in[c.pos] >= '0' && c.in[c.pos] <= '9' {
			c.pos++
			n++
		}
		return n
	}
	if c.in[c.pos] == '-' {
		c.pos++
	}
	switch {
	case c.pos < len(c.in) && c.in[c.pos] == '0':
		c.pos++
	case digits() == 0:
		return "", c.unexpected("a digit")
	}
	if c.pos < len(c.in) && c.in[c.pos] == '.' {
		c.pos++
		if digits() == 0 {
			return "", c.unexpected("a digit")
		}
	}
	if c.pos < len(c.in) && (c.in[c.pos] == 'e' || c.in[c.pos] == 'E') {
		c.pos++
		if c.pos < len(c.in) && (c.in[c.pos] == '+' || c.in[c.pos] == '-') {
			c.pos++
		}
		if digits() == 0 {
			return "", c.unexpected("a digit")
		}
	}
	return string(c.in[start:c.pos]), nil
}

// str takes a string literal and returns its value. An escape of a UTF-16
// surrogate must be one of a pair.
func (c *canon) str() (string, error) {
	c.pos++ // the opening quote
	start := c.pos
	// Most strings have no escape: their value is their bytes.
	for c.pos < len(c.in) {
		switch b := c.in[c.pos]; {
		case b == '"':
			c.pos++
			return string(c.in[start : c.pos-1]), nil
		case b == '\\':
			return c.escaped(start)
		case b < 0x20:
			return "", fmt.Errorf("control character %#x in a string at offset %d", b, c.pos)
		}
		c.pos++
	}
	return "", c.unexpected(`the string's closing '"'`)
}

// escaped finishes a string with escapes, begun at start.
func (c *canon) escaped(start int) (string, error) {
	buf := append([]byte(nil), c.in[start:c.pos]...)
	for c.pos < len(c.in) {
		b := c.in[c.pos]
		switch {
		case b == '"':
			c.pos++
			return string(buf), nil
		case b < 0x20:
			return "", fmt.Errorf("control character %#x in a string at offset %d", b, c.pos)
		case b != '\\':
			buf = append(buf, b)
			c.pos++
			continue
		}
		if c.pos+1 >= len(c.in) {
			break
		}
		e := c.in[c.pos+1]
		c.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := c.hex4()
			if !ok {
				return "", fmt.Errorf("bad \\u escape at offset %d", c.pos-2)
			}
			if r >= 0xd800 && r <= 0xdfff {
				lo := rune(-1)
				if r < 0xdc00 && c.pos+1 < len(c.in) && c.in[c.pos] == '\\' && c.in[c.pos+1] == 'u' {
					c.pos += 2
					if lo, ok = c.hex4(); !ok {
						return "", fmt.Errorf("bad \\u escape at offset %d", c.pos-2)
					}
				}
				if lo < 0xdc00 || lo > 0xdfff {
					return "", errors.New("an unpaired UTF-16 surrogate escape")
				}
				r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", fmt.Errorf("bad escape \\%c at offset %d", e, c.pos-2)
		}
	}
	return "", c.unexpected(`the string's closing '"'`)
}

// hex4 takes the four hex digits of a \u escape.
func (c *canon) hex4() (rune, bool) {
	if c.pos+4 > len(c.in) {
		return 0, false
	}
	var r rune
	for _, h := range c.in[c.pos : c.pos+4] {
		switch {
		case h >= '0' && h <= '9':
			r = r<<4 | rune(h-'0')
		case h >= 'a' && h <= 'f':
			r = r<<4 | rune(h-'a'+10)
		case h >= 'A' && h <= 'F':
			r = r<<4 | rune(h-'A'+10)
		default:
			return 0, false
		}
	}
	c.pos += 4
	return r, true
}

func canonNumber(n json.Number) (string, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if i > maxSafeInt || i < -maxSafeInt {
			return "", fmt.Errorf("%w: number %s out of the range ±(2^53-1)", ErrNotCanonical, n)
		}
		return strconv.FormatInt(i, 10), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != float64(int64(f)) || f > maxSafeInt || f < -maxSafeInt {
		return "", fmt.Errorf("%w: number %s is not an integer within ±(2^53-1)", ErrNotCanonical, n)
	}
	return strconv.FormatInt(int64(f), 10), nil
}

// appendCanonString appends s as a canonical JSON string.
func appendCanonString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for _, r := range s {
		switch {
		case r == '"':
			out = append(out, `\"`...)
		case r == '\\':
			out = append(out, `\\`...)
		case r == '\b':
			out = append(out, `\b`...)
		case r == '\t':
			out = append(out, `\t`...)
		case r == '\n':
			out = append(out, `\n`...)
		case r == '\f':
			out = append(out, `\f`...)
		case r == '\r':
			out = append(out, `\r`...)
		case r < 0x20:
			out = append(out, `\u00`...)
			out = append(out, hex[r>>4], hex[r&0xf])
		default:
			out = utf8.AppendRune(out, r)
		}
	}
	return append(out, '"')
}
