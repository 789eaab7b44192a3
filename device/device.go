// Package device reads the rating buttons and drives the citizen's
// feedback. It knows pins and buttons and nothing of tickets or MQTT: an
// input driver turns button activity into [Press] values, and a [Feedback]
// shows the citizen what became of a press.
package device

import (
	"context"
	"log/slog"
	"time"
)

// Press is one debounced press of a button, or of the staff key.
type Press struct {
	// Button is the 1-based index of the button in configuration order;
	// 0 for the staff key.
	Button int
	// StaffKey is a press of the staff's "请评价" key: it opens a rating
	// window and is not a rating.
	StaffKey bool
	// At is when the press was recognised, as read from the driver's clock.
	At time.Time
}

// Source is an input driver: Run sends presses to out until ctx is done.
// Run returns nil when ctx is cancelled and an error only when the input
// can no longer be read.
type Source interface {
	Run(ctx context.Context, out chan<- Press) error
}

// Feedback shows the citizen and the hall what is happening. Every method
// must return promptly: feedback never delays recording.
type Feedback interface {
	// Recorded is called after a press is durable in the outbox.
	Recorded(button int)
	// Failed is called when a press could not be recorded.
	Failed(button int)
	// RatingWindow says whether a press now would be counted.
	RatingWindow(open bool)
	// AskReason says whether the terminal is asking for the reason of a
	// 差评: the next press names a reason rather than rates.
	AskReason(on bool)
	// Online says whether the broker connection is up.
	Online(up bool)
}

// NoFeedback is a [Feedback] that shows nothing.
type NoFeedback struct{}

var _ Feedback = NoFeedback{}

// Recorded implements [Feedback].
func (NoFeedback) Recorded(int) {}

// Failed implements [Feedback].
func (NoFeedback) Failed(int) {}

// RatingWindow implements [Feedback].
func (NoFeedback) RatingWindow(bool) {}

// AskReason implements [Feedback].
func (NoFeedback) AskReason(bool) {}

// Online implements [Feedback].
func (NoFeedback) Online(bool) {}

// LogFeedback is the feedback of the sim driver: it logs at debug level what
// LEDs would show.
type LogFeedback struct{ log *slog.Logger }

var _ Feedback = LogFeedback{}

// NewLogFeedback returns a feedback that logs to log.
func NewLogFeedback(log *slog.Logger) LogFeedback { return LogFeedback{log} }

// Recorded implements [Feedback].
func (f LogFeedback) Recorded(b int) { f.log.Debug("feedback: thank you", "button", b) }

// Failed implements [Feedback].
func (f LogFeedback) Failed(b int) { f.log.Debug("feedback: error", "button", b) }

// RatingWindow implements [Feedback].
func (f LogFeedback) RatingWindow(open bool) { f.log.Debug("feedback: rating window", "open", open) }

// AskReason implements [Feedback].
func (f LogFeedback) AskReason(on bool) { f.log.Debug("feedback: asking for a reason", "on", on) }

// Online implements [Feedback].
func (f LogFeedback) Online(up bool) { f.log.Debug("feedback: broker link", "up", up) }
