package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	if err := checkSurrogates(obj); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	var buf bytes.Buffer
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrNotCanonical)
	}
	if err := canonObject(dec, &buf, skip); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the object", ErrNotCanonical)
	}
	return buf.Bytes(), nil
}

type member struct {
	name string
	val  []byte
}

// canonObject writes the members of an object whose '{' was read.
func canonObject(dec *json.Decoder, out *bytes.Buffer, skip []string) error {
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotCanonical, err)
		}
		name := tok.(string) // the decoder returns only strings as names
		if slices.ContainsFunc(ms, func(m member) bool { return m.name == name }) {
			return fmt.Errorf("%w: member %q twice", ErrNotCanonical, name)
		}
		var v bytes.Buffer
		if err := canonValue(dec, &v); err != nil {
			return err
		}
		if slices.Contains(skip, name) {
			continue
		}
		ms = append(ms, member{name, v.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	// Go compares strings bytewise: UTF-8 byte order is code point order.
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.name, b.name) })
	out.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			out.WriteByte(',')
		}
		canonString(out, m.name)
		out.WriteByte(':')
		out.Write(m.val)
	}
	out.WriteByte('}')
	return nil
}

func canonValue(dec *json.Decoder, out *bytes.Buffer) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return canonObject(dec, out, nil)
		}
		out.WriteByte('[')
		for n := 0; dec.More(); n++ {
			if n > 0 {
				out.WriteByte(',')
			}
			if err := canonValue(dec, out); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return fmt.Errorf("%w: %v", ErrNotCanonical, err)
		}
		out.WriteByte(']')
	case string:
		canonString(out, t)
	case json.Number:
		n, err := canonNumber(t)
		if err != nil {
			return err
		}
		out.WriteString(n)
	case bool:
		out.WriteString(strconv.FormatBool(t))
	case nil:
		out.WriteString("null")
	}
	return nil
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

func canonString(out *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	out.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			out.WriteString(`\"`)
		case r == '\\':
			out.WriteString(`\\`)
		case r == '\b':
			out.WriteString(`\b`)
		case r == '\t':
			out.WriteString(`\t`)
		case r == '\n':
			out.WriteString(`\n`)
		case r == '\f':
			out.WriteString(`\f`)
		case r == '\r':
			out.WriteString(`\r`)
		case r < 0x20:
			out.WriteString(`\u00`)
			out.WriteByte(hex[r>>4])
			out.WriteByte(hex[r&0xf])
		default:
			out.WriteRune(r)
		}
	}
	out.WriteByte('"')
}

// checkSurrogates refuses \u escapes of UTF-16 surrogates that do not form
// a pair. Backslashes occur in JSON only inside strings, so reading escapes
// left to right finds them all.
func checkSurrogates(b []byte) error {
	bad := fmt.Errorf("%w: an unpaired UTF-16 surrogate escape", ErrNotCanonical)
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 >= len(b) || b[i+1] != 'u' {
			i++
			continue
		}
		r, ok := hex4(b, i+2)
		i += 5
		if !ok || r < 0xd800 || r > 0xdfff {
			continue
		}
		if r >= 0xdc00 {
			return bad
		}
		lo, ok := hex4(b, i+3)
		if i+2 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' || !ok || lo < 0xdc00 || lo > 0xdfff {
			return bad
		}
		i += 6
	}
	return nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[at:at+4]), 16, 16)
	return rune(v), err == nil
}
