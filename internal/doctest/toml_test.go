package doctest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	agentconfig "github.com/hallrate/hallrate/config"
	hallconfig "github.com/hallrate/hallrate/hall/config"
)

// A TOML block may be preceded by a marker that says which binary reads it
// and whether it is a fragment, checked merged into a minimal configuration:
//
//	<!-- toml: agent fragment -->
//
// Without a marker the binary is told from the block's sections and the
// block must load as it stands.
var marker = regexp.MustCompile(`^<!--\s*toml:\s*(agent|collector)(\s+fragment)?\s*-->$`)

// The smallest configurations a fragment is merged into.
var bases = map[string]string{
	"agent":     "[device]\nid = \"w05-a\"\nhall = \"h1\"\ncounter = \"W05\"\ndriver = \"sim\"\n",
	"collector": "",
}

var (
	agentSections     = []string{"device", "buffer", "binding", "gpio", "buttons", "voice", "reasons"}
	collectorSections = []string{"hall", "store", "esup", "trust", "tickets", "report", "followup", "demo", "calendar"}
)

type block struct {
	file     string
	line     int
	binary   string
	fragment bool
	marked   bool
	text     string
}

func blocks(t *testing.T, file string) []block {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```toml":
			cur = &block{file: file, line: n}
			if m := marker.FindStringSubmatch(prev); m != nil {
				cur.binary, cur.fragment, cur.marked = m[1], m[2] != "", true
			}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
		if trimmed != "" {
			prev = trimmed
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: TOML block never closed", file, cur.line)
	}
	return out
}

// guess tells the binary from the block's top-level tables.
func guess(tables map[string]any) string {
	has := func(names []string) bool {
		for _, n := range names {
			if _, ok := tables[n]; ok {
				return true
			}
		}
		return false
	}
	switch a, c := has(agentSections), has(collectorSections); {
	case a && !c:
		return "agent"
	case c && !a:
		return "collector"
	}
	return ""
}

// merge lays over onto base, table by table.
func merge(base, over map[string]any) {
	for k, v := range over {
		if bt, ok := base[k].(map[string]any); ok {
			if ot, ok := v.(map[string]any); ok {
				merge(bt, ot)
				continue
			}
		}
		base[k] = v
	}
}

func load(binary string, data []byte) error {
	var err error
	if binary == "agent" {
		_, err = agentconfig.Parse(data)
	} else {
		_, err = hallconfig.Parse(data)
	}
	return err
}

func check(b block) error {
	var tables map[string]any
	if _, err := toml.Decode(b.text, &tables); err != nil {
		return fmt.Errorf("not TOML: %w", err)
	}
	if b.binary == "" {
		b.binary = guess(tables)
		if b.binary == "" {
			return fmt.Errorf("cannot tell whose configuration this is: mark it <!-- toml: agent --> or <!-- toml: collector --> (add \"fragment\" for a part)")
		}
	}
	data := []byte(b.text)
	if b.fragment {
		var base map[string]any
		if _, err := toml.Decode(bases[b.binary], &base); err != nil {
			return err
		}
		merge(base, tables)
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(base); err != nil {
			return err
		}
		data = buf.Bytes()
	}
	if err := load(b.binary, data); err != nil {
		what := "as it stands"
		if b.fragment {
			what = "merged into a minimal configuration"
		}
		return fmt.Errorf("%s configuration %s: %v", b.binary, what, err)
	}
	return nil
}

func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../../README.md"}
	more, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append(files, more...)
}

// TestDocsTOMLLoads loads every TOML block of README.md and docs/ in the
// binary it belongs to, so that a block copied as it stands works.
func TestDocsTOMLLoads(t *testing.T) {
	n := 0
	for _, f := range docFiles(t) {
		for _, b := range blocks(t, f) {
			n++
			if err := check(b); err != nil {
				t.Errorf("%s:%d: %v", strings.TrimPrefix(b.file, "../../"), b.line, err)
			}
		}
	}
	if n < 4 {
		t.Fatalf("found only %d TOML blocks in README.md and docs/: is the extraction broken?", n)
	}
	t.Logf("%d TOML blocks checked", n)
}

// TestCheckCatchesBadBlocks proves the check can fail: a duplicated
// table, an unknown key, and a fragment that is not marked as one.
func TestCheckCatchesBadBlocks(t *testing.T) {
	for name, b := range map[string]block{
		"duplicate table": {text: "[device]\nid = \"a\"\nhall = \"h\"\ncounter = \"c\"\n[http]\nlisten = \"\"\n[http]\nlisten = \"x\"\n"},
		"unknown key":     {binary: "collector", text: "[hall]\nidd = \"h1\"\n"},
		"unmarked part":   {text: "[gpio]\npull = \"up\"\n"},
		"bad fragment":    {binary: "agent", fragment: true, text: "[gpio]\npull = \"sideways\"\n"},
	} {
		if err := check(b); err == nil {
			t.Errorf("%s: passed", name)
		}
	}
	if err := check(block{binary: "agent", fragment: true, text: "[gpio]\npull = \"down\"\n"}); err != nil {
		t.Errorf("good fragment: %v", err)
	}
}
