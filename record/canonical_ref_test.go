package record

// The canonical form as encoding/json's token reader produced it until
// 2026-12-04: the reference the byte-level [CanonicalJSON] is fuzzed
// against (FuzzCanonicalMatchesReference).

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

func referenceCanonicalJSON(obj []byte, skip ...string) ([]byte, error) {
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
	if err := refObject(dec, &buf, skip); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the object", ErrNotCanonical)
	}
	return buf.Bytes(), nil
}

// refObject writes the members of an object whose '{' was read.
func refObject(dec *json.Decoder, out *bytes.Buffer, skip []string) error {
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
		if err := refValue(dec, &v); err != nil {
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
		refString(out, m.name)
		out.WriteByte(':')
		out.Write(m.val)
	}
	out.WriteByte('}')
	return nil
}

func refValue(dec *json.Decoder, out *bytes.Buffer) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return refObject(dec, out, nil)
		}
		out.WriteByte('[')
		for n := 0; dec.More(); n++ {
			if n > 0 {
				out.WriteByte(',')
			}
			if err := refValue(dec, out); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return fmt.Errorf("%w: %v", ErrNotCanonical, err)
		}
		out.WriteByte(']')
	case string:
		refString(out, t)
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

func refString(out *bytes.Buffer, s string) { out.Write(appendCanonString(nil, s)) }

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
