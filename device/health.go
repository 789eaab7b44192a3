package device

// Health is what an input driver knows of its buttons beyond presses: the
// signs of a jammed button or a noisy wire, for the status and metrics.
type Health struct {
	// Stuck lists the buttons (1-based; 0 is the staff key) held down
	// longer than the driver's stuck limit right now.
	Stuck []int
	// StuckEvents counts the times a button was found stuck since start.
	StuckEvents int64
	// Presses counts the presses the driver recognised since start.
	Presses int64
	// Glitches counts bursts of activity too short to be a press.
	Glitches int64
}

// HealthReporter is implemented by input drivers that watch their wiring.
// Callers find it by a type assertion on a [Source].
type HealthReporter interface {
	Health() Health
}
