package device

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jonboulle/clockwork"
)

// Sim is the "sim" input driver: each line of its reader is one press, the
// button number 1..Buttons, or "i" for the staff key. Other lines are
// reported and ignored. End of
// input does not end Run; only ctx does.
type Sim struct {
	In      io.Reader
	Buttons int
	Logger  *slog.Logger
	Clock   clockwork.Clock
}

var _ Source = (*Sim)(nil)

// Run implements [Source]. The goroutine that reads a line stamps the
// press and hands it on itself: one hand-off between the input and the
// agent, as the GPIO driver has.
func (s *Sim) Run(ctx context.Context, out chan<- Press) error {
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(s.In)
		for sc.Scan() {
			p, err := s.parse(sc.Text())
			if err != nil {
				s.Logger.Warn("sim input ignored", "line", sc.Text(), "err", err)
				continue
			}
			p.At = s.Clock.Now()
			select {
			case out <- p:
			case <-ctx.Done():
				return
			}
		}
		errc <- sc.Err()
	}()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if err != nil {
			s.Logger.Warn("sim input ended with an error; waiting for stop", "err", err)
		} else {
			s.Logger.Info("sim input ended; waiting for stop")
		}
	}
	<-ctx.Done()
	return nil
}

func (s *Sim) parse(line string) (Press, error) {
	line = strings.TrimSpace(line)
	if line == "i" {
		return Press{StaffKey: true}, nil
	}
	n, err := strconv.Atoi(line)
	if err != nil || n < 1 || n > s.Buttons {
		return Press{}, fmt.Errorf("neither a button number 1..%d nor i (the staff key)", s.Buttons)
	}
	return Press{Button: n}, nil
}
