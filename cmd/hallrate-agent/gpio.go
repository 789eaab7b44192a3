package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/device"
)

// openGPIO is replaced by the periph driver.
func openGPIO(cfg config.Config, log *slog.Logger) (device.Source, device.Feedback, func(), error) {
	return nil, nil, nil, errors.New("gpio: driver not built yet")
}

func cmdSelftest(ctx context.Context, args []string, io stdio) error {
	return errors.New("selftest: not built yet")
}
