package node

import (
	"testing"
	"time"
)

func TestEventTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	keyA := entityKey{"routes", "a"}
	keyB := entityKey{"routes", "b"}
	type step struct {
		do            func(tr *eventTracker)
		wantWatermark int64
		wantGaps      int
	}
	tests := []struct {
		name  string
		steps []step
		check func(t *testing.T, tr *eventTracker)
	}{
		{
			name: "in-order events move the watermark",
			steps: []step{
				{func(tr *eventTracker) { tr.markApplied(1, keyA); tr.markApplied(2, keyA); tr.observedUpTo(2, t0) }, 2, 0},
			},
		},
		{
			name: "late commit below a visible id stays a gap until it appears",
			steps: []step{
				{func(tr *eventTracker) { tr.markApplied(11, keyA); tr.observedUpTo(11, t0) }, 0, 10},
				{func(tr *eventTracker) {
					for id := int64(1); id <= 9; id++ {
						tr.markApplied(id, keyA)
					}
					tr.observedUpTo(11, t0.Add(time.Second))
				}, 9, 1},
				{func(tr *eventTracker) { tr.markApplied(10, keyB); tr.observedUpTo(11, t0.Add(2*time.Second)) }, 11, 0},
			},
		},
		{
			name: "a gap older than the timeout is given up (rolled back)",
			steps: []step{
				{func(tr *eventTracker) { tr.markApplied(2, keyA); tr.observedUpTo(2, t0) }, 0, 1},
				{func(tr *eventTracker) { tr.observedUpTo(2, t0.Add(59*time.Second)) }, 0, 1},
				{func(tr *eventTracker) { tr.observedUpTo(2, t0.Add(60*time.Second)) }, 2, 0},
			},
		},
		{
			name: "reset treats invisible ids as in-flight gaps",
			steps: []step{
				{func(tr *eventTracker) {
					tr.reset(100, 105, map[int64]entityKey{101: keyA, 102: keyA, 104: keyA, 105: keyA}, t0)
				}, 102, 1},
				{func(tr *eventTracker) { tr.markApplied(103, keyB); tr.observedUpTo(105, t0) }, 105, 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newEventTracker(time.Minute)
			for i, s := range tt.steps {
				s.do(tr)
				if tr.watermark != s.wantWatermark || tr.pendingGaps() != s.wantGaps {
					t.Fatalf("step %d: got watermark %d with %d gaps, want %d with %d", i, tr.watermark, tr.pendingGaps(), s.wantWatermark, s.wantGaps)
				}
			}
		})
	}
}

func TestEventTrackerForgedHintCannotHideARealEvent(t *testing.T) {
	tr := newEventTracker(time.Minute)
	forged := entityKey{"routes", "forged"}
	real := entityKey{"services", "real"}
	tr.markApplied(7, forged)
	if tr.applied(7, real) {
		t.Fatal("got event 7 for the real entity counted as applied after a forged hint named another entity")
	}
	if !tr.applied(7, forged) {
		t.Fatal("got event 7 for the hinted entity not applied, want applied")
	}
}
