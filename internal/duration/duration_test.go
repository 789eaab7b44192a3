package duration

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestDecode(t *testing.T) {
	var c struct{ D Duration }
	if _, err := toml.Decode(`D = "1m30s"`, &c); err != nil || c.D.Duration != 90*time.Second {
		t.Fatalf("1m30s: %v %v", c.D, err)
	}
	for _, bad := range []string{`D = "30"`, `D = "soon"`, `D = 30`} {
		_, err := toml.Decode(bad, &c)
		if err == nil {
			t.Errorf("%s: accepted as %v", bad, c.D)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error of more than one line: %q", bad, err)
		}
	}
	if b, _ := Of(1500 * time.Millisecond).MarshalText(); string(b) != "1.5s" {
		t.Fatalf("marshal: %s", b)
	}
}
