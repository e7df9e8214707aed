// Package testutil holds helpers shared by tests of several packages. It
// must not be imported by non-test code.
package testutil

import (
	"testing"
	"time"
)

// retryEvery is how often Eventually checks again.
const retryEvery = 20 * time.Millisecond

// Eventually retries check until it returns nil, and fails the test with
// check's last error once timeout has passed. onFail runs first, e.g. to
// print the logs of the processes involved.
func Eventually(t testing.TB, timeout time.Duration, check func() error, onFail ...func()) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			for _, f := range onFail {
				f()
			}
			t.Fatalf("not true after %s: %v", timeout, err)
		}
		time.Sleep(retryEvery)
	}
}
