// Package voice speaks the terminal's prompts through an ALSA player
// (aplay from alsa-utils). Speaking never holds up recording: [Player.Say]
// only hands the prompt to the player's goroutine, a newer prompt cuts the
// one still playing, and a missing or broken player is logged once and
// counted, never fatal.
package voice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Prompt names one prompt; its file is {dir}/{prompt}.wav.
type Prompt string

// The prompts of a terminal.
const (
	// Invite is spoken when the rating window opens.
	Invite Prompt = "invite"
	// Thanks follows a counted rating, and a reason.
	Thanks Prompt = "thanks"
	// Already follows a press on a ticket that already has its rating.
	Already Prompt = "already"
	// Reason follows a 差评 and asks why.
	Reason Prompt = "reason"
	// Error follows a press that could not be recorded.
	Error Prompt = "error"
)

// Prompts returns every prompt, in the order a selftest plays them.
func Prompts() []Prompt { return []Prompt{Invite, Thanks, Already, Reason, Error} }

// Config configures a [Player].
type Config struct {
	// Player is the program, aplay or one taking its arguments:
	// [-D device] -q FILE, or "-" for a WAV file on standard input.
	Player string
	// Device is the ALSA device name; "" is the system default.
	Device string
	// Dir holds the prompt files.
	Dir string
	// Volume is 0..100 percent; below 100 the samples of 16-bit PCM files
	// are scaled before they reach the player, other files play as they are.
	Volume int
	Logger *slog.Logger
}

// Stats are the player's counts.
type Stats struct {
	Played int64 // prompts the player finished or that a newer one cut
	Failed int64 // prompts that could not be played
	// Working is false while the last prompt failed.
	Working bool
}

// Player plays prompts one at a time.
type Player struct {
	cfg  Config
	log  *slog.Logger
	next chan Prompt

	mu      sync.Mutex
	stats   Stats
	failing bool // the last attempt failed; logged once until one succeeds
}

// New returns a Player; [Player.Run] plays what [Player.Say] hands it.
func New(cfg Config) *Player {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Player == "" {
		cfg.Player = "aplay"
	}
	return &Player{cfg: cfg, log: cfg.Logger, next: make(chan Prompt, 1), stats: Stats{Working: true}}
}

// Say asks for p to be spoken, cutting whatever is playing. It never
// blocks: a prompt not yet started is replaced by a newer one.
func (p *Player) Say(pr Prompt) {
	for {
		select {
		case p.next <- pr:
			return
		default:
		}
		select {
		case <-p.next: // drop the older prompt not yet started
		default:
		}
	}
}

// Stats returns the counts; safe from any goroutine.
func (p *Player) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Run plays prompts until ctx is done, then stops the one playing.
func (p *Player) Run(ctx context.Context) {
	var cur *playing
	defer func() { cur.stop() }()
	var ended <-chan error
	for {
		select {
		case <-ctx.Done():
			return
		case pr := <-p.next:
			if cur != nil {
				cur.stop() // the newer prompt cuts the older
				p.count(nil, cur.prompt)
			}
			cur, ended = p.start(pr)
		case err := <-ended:
			p.count(err, cur.prompt)
			cur, ended = nil, nil
		}
	}
}

// Play plays pr to its end and returns the player's error, for a check
// such as the selftest. It does not go through [Player.Run] or its
// counts.
func (p *Player) Play(ctx context.Context, pr Prompt) error {
	cmd, err := p.command(pr)
	if err != nil {
		return err
	}
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.cfg.Player, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill() // an error means it has exited already
		<-done
		return ctx.Err()
	}
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return fmt.Errorf("%s: %w: %s", p.cfg.Player, err, msg)
	}
	return nil
}

// File returns the path of the file of pr.
func (p *Player) File(pr Prompt) string { return filepath.Join(p.cfg.Dir, string(pr)+".wav") }

// playing is one player process.
type playing struct {
	prompt Prompt
	cmd    *exec.Cmd
	done   chan error
}

// start starts the player for pr; a prompt that cannot start is counted
// at once and leaves nothing playing.
func (p *Player) start(pr Prompt) (*playing, <-chan error) {
	cmd, err := p.command(pr)
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		p.count(fmt.Errorf("start %s: %w", p.cfg.Player, err), pr)
		return nil, nil
	}
	pl := &playing{prompt: pr, cmd: cmd, done: make(chan error, 1)}
	go func() { pl.done <- cmd.Wait() }()
	return pl, pl.done
}

// stop ends the player by its pid and waits for it.
func (pl *playing) stop() {
	if pl == nil {
		return
	}
	// An error means it has exited already; Wait collects it either way.
	_ = pl.cmd.Process.Kill()
	<-pl.done
}

func (p *Player) command(pr Prompt) (*exec.Cmd, error) {
	file := p.File(pr)
	args := []string{"-q"}
	if p.cfg.Device != "" {
		args = append(args, "-D", p.cfg.Device)
	}
	if p.cfg.Volume >= 100 {
		if _, err := os.Stat(file); err != nil {
			return nil, fmt.Errorf("prompt %s: %w", pr, err)
		}
		return exec.Command(p.cfg.Player, append(args, file)...), nil
	}
	wav, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("prompt %s: %w", pr, err)
	}
	cmd := exec.Command(p.cfg.Player, append(args, "-")...)
	cmd.Stdin = bytesReader(Scale(wav, p.cfg.Volume))
	return cmd, nil
}

// count records how a prompt ended; err is nil for one that played or
// was cut. Failures are logged when they start and when they stop.
func (p *Player) count(err error, pr Prompt) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.stats.Played++
		if p.failing {
			p.failing = false
			p.log.Info("voice prompts play again", "prompt", pr)
		}
		p.stats.Working = true
		return
	}
	p.stats.Failed++
	p.stats.Working = false
	if !p.failing {
		p.failing = true
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%s: %w", p.cfg.Player, err)
		}
		p.log.Error("voice prompt not played; recording goes on (logged once until a prompt plays)",
			"prompt", pr, "err", err)
	}
}
