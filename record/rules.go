package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// The rules every door applies to what enters the hall: the collector's
// record, status and case decoders, the HTTP and CSV doors, and the agent's
// ticket decoder (so a terminal never signs a field that breaks them).
//
// A text field is valid UTF-8, holds no control character (C0, DEL, C1),
// no line or paragraph separator (U+2028, U+2029), no byte order mark
// (U+FEFF) and no bidirectional embedding, override or isolate
// (U+202A..U+202E, U+2066..U+2069), and is at most its limit in bytes of
// UTF-8. A tab is allowed only in free text that says so ([CheckNote]).
// Every number fits its column: see the Max and Min constants.
//
// docs/limits.md documents the limits for consumers.
const (
	// MaxIDBytes bounds a device, hall, counter or epoch id; see [ValidID].
	MaxIDBytes = 64
	// MaxShortText bounds a ticket id, staff id, case number (projectNo),
	// button label, boot id, software version, time stamp or key: 64
	// bytes (21 Chinese characters).
	MaxShortText = 64
	// MaxNameText bounds a person's or a department's name and similar
	// short free text: 128 bytes (42 Chinese characters).
	MaxNameText = 128
	// MaxLongText bounds an item or task name, the longest text of the
	// wire: 512 bytes (170 Chinese characters). It is also the bound of a
	// string field a newer version adds that this one does not know.
	MaxLongText = 512
	// MaxNoteText bounds free text typed by people, such as the note that
	// closes a follow-up: 2,000 bytes (the page's 500 characters).
	MaxNoteText = 2000
	// MaxChainText bounds prev and sig (hex SHA-256 and base64 ed25519
	// are 64 and 88 bytes; room is left for a later scheme).
	MaxChainText = 256
	// MaxRecordPayload bounds a press record or a status message in bytes.
	MaxRecordPayload = 16 << 10

	// MinButton and MaxButton bound a record's button: a terminal has 3 to
	// 6 buttons, numbered from 1.
	MinButton, MaxButton = 1, 6
	// MinSatisfaction and MaxSatisfaction bound the national 好差评 code.
	MinSatisfaction, MaxSatisfaction = 1, 5
	// MaxSeq bounds seq and last_seq: the store keeps them as signed
	// 64-bit integers (BIGINT).
	MaxSeq = math.MaxInt64
)

// A RuleError is a field that breaks the rules of text and numbers. Callers
// tell it from other decoding errors with errors.As.
type RuleError struct {
	Field   string // the JSON name, dotted for nested fields ("ticket.staff")
	Problem string
}

func (e *RuleError) Error() string { return e.Field + ": " + e.Problem }

// typeError names the field of a JSON value of the wrong type or out of
// the range of its Go type (a button of 3000000000 overflows int on a
// 32-bit terminal, as it overflows the database's column on a server) as a
// [RuleError], so it is refused the same way on every architecture. Other
// decoding errors are wrapped under what, the kind of message expected.
func typeError(what string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &RuleError{Field: te.Field, Problem: fmt.Sprintf("%s out of range or not a %s", te.Value, te.Type)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// IsRule reports whether err is, or wraps, a [RuleError].
func IsRule(err error) bool {
	var re *RuleError
	return errors.As(err, &re)
}

// CheckText checks a text field without tabs against the rules and its
// limit in bytes.
func CheckText(field, s string, max int) error { return checkText(field, s, max, false) }

// CheckNote checks free text in which a tab belongs (a note typed by the
// duty manager), against the rules and its limit in bytes.
func CheckNote(field, s string, max int) error { return checkText(field, s, max, true) }

func checkText(field, s string, max int, tab bool) error {
	if len(s) > max {
		return &RuleError{field, fmt.Sprintf("%d bytes, more than the limit of %d", len(s), max)}
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return &RuleError{field, fmt.Sprintf("not valid UTF-8 at byte %d", i)}
			}
		}
		if r == '\t' && tab {
			continue
		}
		if forbidden(r) {
			return &RuleError{field, fmt.Sprintf("control character %U at byte %d", r, i)}
		}
	}
	return nil
}

// forbidden reports the characters no text field may hold: they end or
// forge log lines, cut strings in C code and databases (NUL), or reorder
// what a reader sees.
func forbidden(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029, r == 0xfeff:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// CheckInt checks that a number lies in [min, max].
func CheckInt(field string, v, min, max int64) error {
	if v < min || v > max {
		return &RuleError{field, fmt.Sprintf("%d out of range [%d, %d]", v, min, max)}
	}
	return nil
}

// CheckUint checks that an unsigned number lies in [min, max].
func CheckUint(field string, v, min, max uint64) error {
	if v < min || v > max {
		return &RuleError{field, fmt.Sprintf("%d out of range [%d, %d]", v, min, max)}
	}
	return nil
}

// CheckPayload applies the rules to a whole JSON message before it is
// decoded: its size, valid UTF-8 throughout (encoding/json would turn
// invalid bytes into U+FFFD without a word), and every string in it, key or
// value, at any depth. limit gives the limit of a field by its dotted name
// ("ticket.staff"); a string it does not know (a field of a newer version,
// an array element) gets MaxLongText, a key MaxShortText. It checks no
// structure: the decoder does that after.
func CheckPayload(payload []byte, max int, limit func(field string) (int, bool)) error {
	if len(payload) > max {
		return &RuleError{"message", fmt.Sprintf("%d bytes, more than the limit of %d", len(payload), max)}
	}
	if !utf8.Valid(payload) {
		return &RuleError{"message", fmt.Sprintf("not valid UTF-8 at byte %d", invalidAt(payload))}
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	type frame struct {
		object, haveKey bool
		key             string
	}
	var stack []frame
	// valueDone notes that the value of the current key ended.
	valueDone := func() {
		if n := len(stack); n > 0 {
			stack[n-1].haveKey = false
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or not JSON: the decoder says so in its own words
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{', '[':
				stack = append(stack, frame{object: tok == '{'})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && !stack[n-1].haveKey {
				if err := CheckText("key", tok, MaxShortText); err != nil {
					return err
				}
				stack[n-1].key, stack[n-1].haveKey = tok, true
				continue
			}
			var parts []string
			for _, f := range stack {
				if f.object {
					parts = append(parts, f.key)
				}
			}
			name := strings.Join(parts, ".")
			lim, ok := limit(name)
			if !ok {
				lim = MaxLongText
			}
			if name == "" {
				name = "value"
			}
			if err := CheckText(name, tok, lim); err != nil {
				return err
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// recordIDBytes bounds a record id, {device}:{epoch}:{seq}.
const recordIDBytes = 2*MaxIDBytes + 22

// PressLimit is the text limit of a press record's field, by its dotted
// JSON name.
func PressLimit(field string) (int, bool) {
	switch field {
	case "device", "hall", "counter", "epoch":
		return MaxIDBytes, true
	case "id", "for":
		return recordIDBytes, true
	case "label", "disposition", "pressed_at", "boot_id", "kind",
		"ticket.id", "ticket.state", "ticket.staff", "ticket.projectNo", "ticket.source", "reason.code":
		return MaxShortText, true
	case "reason.label":
		return MaxNameText, true
	case "ticket.item":
		return MaxLongText, true
	case "prev", "sig":
		return MaxChainText, true
	}
	return 0, false
}

// StatusLimit is the text limit of a status message's field.
func StatusLimit(field string) (int, bool) {
	switch field {
	case "device", "epoch":
		return MaxIDBytes, true
	case "version", "boot_id", "pubkey", "at", "stopped_at":
		return MaxShortText, true
	}
	return 0, false
}

// TicketLimit is the text limit of a ticket message's field.
func TicketLimit(field string) (int, bool) {
	switch field {
	case "ticket", "state", "staff", "projectNo", "at", "source":
		return MaxShortText, true
	case "item":
		return MaxLongText, true
	}
	return 0, false
}

// CaseLimit is the text limit of a case's field, by its JSON name.
func CaseLimit(field string) (int, bool) {
	switch field {
	case "hall", "counter":
		return MaxIDBytes, true
	case "projectNo", "taskCode", "deptCode", "ticket", "staff", "acceptedAt", "finishedAt":
		return MaxShortText, true
	case "deptName", "staffName":
		return MaxNameText, true
	case "taskName":
		return MaxLongText, true
	}
	return 0, false
}

// checkPressNumbers applies the number rules to a decoded press record.
func checkPressNumbers(p *Press) error {
	if err := CheckUint("seq", p.Seq, 1, MaxSeq); err != nil {
		return err
	}
	if err := CheckInt("button", int64(p.Button), MinButton, MaxButton); err != nil {
		return err
	}
	if err := CheckInt("satisfaction", int64(p.Satisfaction), MinSatisfaction, MaxSatisfaction); err != nil {
		return err
	}
	return CheckInt("uptime_ms", p.UptimeMS, 0, math.MaxInt64)
}

// checkReasonNumbers applies the number rules to a decoded reason record,
// which has no satisfaction.
func checkReasonNumbers(p *Press) error {
	if err := CheckUint("seq", p.Seq, 1, MaxSeq); err != nil {
		return err
	}
	if err := CheckInt("button", int64(p.Button), MinButton, MaxButton); err != nil {
		return err
	}
	return CheckInt("uptime_ms", p.UptimeMS, 0, math.MaxInt64)
}
