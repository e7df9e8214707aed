package plugins

import (
	"context"
	"sync"
	"time"
)

// logQueue is kong/tools/queue.lua for the logging plugins: entries are
// handed over without blocking the request (when full, the oldest is
// dropped, as Kong drops old entries), batched up to max_batch_size or
// max_coalescing_delay after the first, and a batch that fails is retried
// after initial_retry_delay, doubling up to max_retry_delay, until
// max_retry_time has passed. One goroutine per queue sends, in order.
type logQueue struct {
	name string
	conf queueConfig
	ch   chan []byte
	send func(ctx context.Context, batch [][]byte) error
	env  *Env

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	full, failed sampled
}

// queueConfig is typedefs.queue's record.
type queueConfig struct {
	MaxBatchSize       int     `json:"max_batch_size"`
	MaxCoalescingDelay float64 `json:"max_coalescing_delay"`
	MaxEntries         int     `json:"max_entries"`
	MaxRetryTime       float64 `json:"max_retry_time"`
	InitialRetryDelay  float64 `json:"initial_retry_delay"`
	MaxRetryDelay      float64 `json:"max_retry_delay"`
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// logQueues are the Env's queues by name: a plugin compiled again with
// the same settings keeps its queue and what is waiting in it.
type logQueues struct {
	mu     sync.Mutex
	byName map[string]*logQueue
}

// queue is the running queue of name, started on first use.
func (e *Env) queue(name string, conf queueConfig, send func(context.Context, [][]byte) error) *logQueue {
	e.queues.mu.Lock()
	defer e.queues.mu.Unlock()
	if q := e.queues.byName[name]; q != nil {
		return q
	}
	if e.queues.byName == nil {
		e.queues.byName = map[string]*logQueue{}
	}
	conf.MaxBatchSize = max(conf.MaxBatchSize, 1)
	conf.MaxEntries = max(conf.MaxEntries, 1)
	ctx, cancel := context.WithCancel(context.Background())
	q := &logQueue{name: name, conf: conf, ch: make(chan []byte, conf.MaxEntries), send: send, env: e,
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
	e.queues.byName[name] = q
	go q.run()
	return q
}

// closeQueues stops every queue's sender; entries still waiting are
// lost.
func (e *Env) closeQueues() {
	e.queues.mu.Lock()
	list := e.queues.byName
	e.queues.byName = nil
	e.queues.mu.Unlock()
	for _, q := range list {
		q.cancel()
		<-q.done
	}
}

// add hands an entry over without waiting.
func (q *logQueue) add(entry []byte) {
	select {
	case q.ch <- entry:
		return
	default:
	}
	select {
	case <-q.ch: // the oldest goes
	default:
	}
	select {
	case q.ch <- entry:
	default:
	}
	if ok, dropped := q.full.allow(time.Now()); ok {
		q.env.logger().Error().Str("queue", q.name).Int64("held_back", dropped).
			Msg("queue full, dropping old entries until processing is successful again")
	}
}

func (q *logQueue) run() {
	defer close(q.done)
	for {
		var first []byte
		select {
		case first = <-q.ch:
		case <-q.ctx.Done():
			return
		}
		batch := q.fill([][]byte{first})
		q.deliver(batch)
	}
}

// fill adds entries to the batch until it is full or the coalescing
// delay since its first entry has passed.
func (q *logQueue) fill(batch [][]byte) [][]byte {
	if len(batch) >= q.conf.MaxBatchSize {
		return batch
	}
	timer := time.NewTimer(seconds(q.conf.MaxCoalescingDelay))
	defer timer.Stop()
	for len(batch) < q.conf.MaxBatchSize {
		select {
		case e := <-q.ch:
			batch = append(batch, e)
		case <-timer.C:
			return batch
		case <-q.ctx.Done():
			return batch
		}
	}
	return batch
}

// deliver sends a batch, retrying with backoff until max_retry_time.
func (q *logQueue) deliver(batch [][]byte) {
	start := time.Now()
	delay := seconds(q.conf.InitialRetryDelay)
	for {
		err := q.send(q.ctx, batch)
		if err == nil {
			return
		}
		if ok, dropped := q.failed.allow(time.Now()); ok {
			q.env.logger().Warn().Str("queue", q.name).Err(err).Int64("held_back", dropped).
				Msg("handler could not process entries")
		}
		if time.Since(start) > seconds(q.conf.MaxRetryTime) || q.ctx.Err() != nil {
			q.env.logger().Error().Str("queue", q.name).Int("entries", len(batch)).
				Msg("could not send entries due to max_retry_time exceeded; queue entries were lost")
			return
		}
		select {
		case <-time.After(delay):
		case <-q.ctx.Done():
		}
		delay = min(2*delay, seconds(q.conf.MaxRetryDelay))
	}
}
