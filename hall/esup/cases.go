package esup

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/record"
)

// FieldError is a case that lacks a field or has a bad one.
type FieldError struct {
	// Index is the case's place in its batch (0-based) or its CSV line.
	Index int
	Field string
	Msg   string
	// Err is the reader's error behind Msg, if any (such as
	// *http.MaxBytesError).
	Err error
}

func (e *FieldError) Error() string { return fmt.Sprintf("case %d: %s: %s", e.Index, e.Field, e.Msg) }

func (e *FieldError) Unwrap() error { return e.Err }

// MaxCases bounds the cases of one request or file.
const MaxCases = 100000

// caseFields are the columns of a cases CSV: the JSON names.
var caseFields = []string{"projectNo", "taskCode", "taskName", "deptCode", "deptName", "hall", "counter", "ticket",
	"staff", "staffName", "acceptedAt", "finishedAt"}

// DecodeCases reads one case object or an array of them from r and checks
// every case; one bad case is an error naming its field, and then no case
// is returned. See [EachCase] for reading without holding the cases.
func DecodeCases(r io.Reader, loc *time.Location, now time.Time) ([]store.Case, error) {
	var out []store.Case
	if _, err := EachCase(r, loc, now, func(c store.Case) error { out = append(out, c); return nil }); err != nil {
		return nil, err
	}
	return out, nil
}

// EachCase reads one case object or an array of them from r, checks each
// case and hands it to fn as soon as it is decoded, so what is held is one
// case whatever the size of r. It stops at the first bad case (a
// [*FieldError]), past [MaxCases], or at fn's first error, and returns how
// many cases fn took.
func EachCase(r io.Reader, loc *time.Location, now time.Time, fn func(store.Case) error) (int, error) {
	br := bufio.NewReader(r)
	first, err := firstByte(br)
	if err != nil {
		return 0, &FieldError{Index: 0, Field: "body", Msg: "not a JSON object or array: " + err.Error(), Err: err}
	}
	dec := json.NewDecoder(br)
	if first != '[' {
		one, err := decodeCase(dec, 0, loc, now)
		if err != nil {
			return 0, err
		}
		if err := atEnd(dec); err != nil {
			return 0, &FieldError{Index: 0, Field: "body", Msg: err.Error()}
		}
		return 1, fn(one)
	}
	if _, err := dec.Token(); err != nil {
		return 0, &FieldError{Index: 0, Field: "body", Msg: "not a JSON array of case objects: " + err.Error(), Err: err}
	}
	n := 0
	for ; dec.More(); n++ {
		if n >= MaxCases {
			return n, &FieldError{Index: MaxCases, Field: "body", Msg: fmt.Sprintf("more than %d cases", MaxCases)}
		}
		c, err := decodeCase(dec, n, loc, now)
		if err != nil {
			return n, err
		}
		if err := fn(c); err != nil {
			return n, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return n, &FieldError{Index: n, Field: "body", Msg: "not a JSON array of case objects: " + err.Error(), Err: err}
	}
	if err := atEnd(dec); err != nil {
		return n, &FieldError{Index: n, Field: "body", Msg: err.Error()}
	}
	return n, nil
}

// firstByte returns the first byte after white space, left unread.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\t' && b != '\n' && b != '\r' {
			return b, br.UnreadByte()
		}
	}
}

// atEnd checks that nothing but white space follows the JSON value.
func atEnd(dec *json.Decoder) error {
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more after the JSON value")
	}
	return nil
}

// decodeCase decodes and checks the case object at index i.
func decodeCase(dec *json.Decoder, i int, loc *time.Location, now time.Time) (store.Case, error) {
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil || m == nil {
		msg := "not a JSON case object"
		if err != nil {
			msg += ": " + err.Error()
		}
		return store.Case{}, &FieldError{Index: i, Field: "body", Msg: msg, Err: err}
	}
	fields := map[string]string{}
	for k, raw := range m {
		// encoding/json would turn invalid bytes into U+FFFD without a
		// word; checkCase applies the rest of the rules to each field.
		if !utf8.Valid(raw) {
			return store.Case{}, &FieldError{Index: i, Field: k, Msg: "not valid UTF-8"}
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return store.Case{}, &FieldError{Index: i, Field: k, Msg: err.Error()}
		}
		switch v := v.(type) {
		case string:
			fields[k] = v
		case nil:
		default:
			return store.Case{}, &FieldError{Index: i, Field: k, Msg: "must be a string"}
		}
	}
	return checkCase(i, fields, loc, now)
}

// Encodings of a cases CSV: UTF-8 (with or without a byte order mark) and
// GBK, read as GB 18030, its superset.
const (
	UTF8 = "utf-8"
	GBK  = "gbk"
)

// ReadCasesCSV reads a CSV file whose header names the case fields (the
// JSON names) and checks every row like [DecodeCases]; a FieldError's
// Index is the line number. encoding is [UTF8] (also "") or [GBK]; text
// that is not in it, a NUL in a field and a column named twice are errors
// with their line.
func ReadCasesCSV(r io.Reader, encoding string, loc *time.Location, now time.Time) ([]store.Case, error) {
	var out []store.Case
	if _, err := EachCSVCase(r, encoding, loc, now, func(c store.Case) error { out = append(out, c); return nil }); err != nil {
		return nil, err
	}
	return out, nil
}

// EachCSVCase reads a cases CSV like [ReadCasesCSV], handing each checked
// case to fn as soon as it is read, and returns how many fn took.
func EachCSVCase(r io.Reader, encoding string, loc *time.Location, now time.Time, fn func(store.Case) error) (int, error) {
	br := bufio.NewReader(r)
	switch strings.ToLower(encoding) {
	case "", UTF8, "utf8":
		encoding = UTF8
		if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
			br.Discard(3) //nolint:errcheck // peeked: cannot fail
		}
		r = br
	case GBK, "gb18030":
		encoding = GBK
		r = transform.NewReader(br, simplifiedchinese.GB18030.NewDecoder())
	default:
		return 0, fmt.Errorf("cases csv: encoding %q is not utf-8 or gbk", encoding)
	}
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return 0, fmt.Errorf("cases csv: header: %w", err)
	}
	known := map[string]bool{}
	for _, f := range caseFields {
		known[f] = true
	}
	seen := map[string]bool{}
	for i, h := range header {
		if msg := badText(h, encoding); msg != "" {
			return 0, &FieldError{Index: 1, Field: fmt.Sprintf("column %d", i+1), Msg: msg}
		}
		header[i] = strings.TrimSpace(h)
		if !known[header[i]] {
			return 0, &FieldError{Index: 1, Field: header[i], Msg: "unknown column"}
		}
		if seen[header[i]] {
			return 0, &FieldError{Index: 1, Field: header[i], Msg: "column named twice"}
		}
		seen[header[i]] = true
	}
	n := 0
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("cases csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if n >= MaxCases {
			return n, &FieldError{Index: line, Field: "file", Msg: fmt.Sprintf("more than %d cases", MaxCases)}
		}
		fields := map[string]string{}
		for i, v := range row {
			if msg := badText(v, encoding); msg != "" {
				l, _ := cr.FieldPos(i)
				return n, &FieldError{Index: l, Field: header[i], Msg: msg}
			}
			if v != "" {
				fields[header[i]] = v
			}
		}
		c, err := checkCase(line, fields, loc, now)
		if err != nil {
			return n, err
		}
		if err := fn(c); err != nil {
			return n, err
		}
		n++
	}
}

// badText says what is wrong with a field's text, or "".
func badText(v, encoding string) string {
	switch {
	case encoding == UTF8 && !utf8.ValidString(v):
		return "not UTF-8 (a GBK file needs --encoding gbk)"
	case encoding == GBK && strings.ContainsRune(v, utf8.RuneError):
		return "not GB 18030 text"
	case strings.ContainsRune(v, 0):
		return "contains NUL"
	}
	return ""
}

func checkCase(i int, f map[string]string, loc *time.Location, now time.Time) (store.Case, error) {
	for _, k := range caseFields {
		lim, _ := record.CaseLimit(k)
		if err := record.CheckText(k, f[k], lim); err != nil {
			var re *record.RuleError
			errors.As(err, &re)
			return store.Case{}, &FieldError{Index: i, Field: k, Msg: re.Problem}
		}
	}
	for _, k := range []string{"projectNo", "hall", "counter"} {
		if strings.TrimSpace(f[k]) == "" {
			return store.Case{}, &FieldError{Index: i, Field: k, Msg: "required"}
		}
	}
	if strings.TrimSpace(f["ticket"]) == "" && (f["acceptedAt"] == "" || f["finishedAt"] == "") {
		// Without its ticket a case joins only by counter and time.
		return store.Case{}, &FieldError{Index: i, Field: "ticket", Msg: "required unless acceptedAt and finishedAt are both given (join by counter and time)"}
	}
	for _, k := range []string{"hall", "counter"} {
		if !record.ValidID(f[k]) {
			return store.Case{}, &FieldError{Index: i, Field: k, Msg: "not of [A-Za-z0-9._-]{1,64}"}
		}
	}
	c := store.Case{ProjectNo: f["projectNo"], TaskCode: f["taskCode"], TaskName: f["taskName"], DeptCode: f["deptCode"],
		DeptName: f["deptName"], Hall: f["hall"], Counter: f["counter"], Ticket: f["ticket"], Staff: f["staff"],
		StaffName: f["staffName"], AcceptedAt: f["acceptedAt"], FinishedAt: f["finishedAt"], ReceivedMS: now.UnixMilli()}
	day := now.In(loc)
	for _, t := range []struct {
		name string
		v    string
		dst  **int64
	}{{"finishedAt", c.FinishedAt, &c.FinishedMS}, {"acceptedAt", c.AcceptedAt, &c.AcceptedMS}} {
		if t.v == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			return store.Case{}, &FieldError{Index: i, Field: t.name, Msg: "not an RFC 3339 time"}
		}
		ms := ts.UnixMilli()
		*t.dst = &ms
		// acceptedAt comes last: it wins when both are there.
		day = ts.In(loc)
	}
	c.ServiceDay = day.Format(time.DateOnly)
	return c, nil
}
