// A Go program that leans on the runtime: goroutines on several threads,
// channels, sync primitives, timers and sleeps, a child process through
// os/exec, file I/O and signal.Notify. It prints only what any correct
// kernel makes it print, and exits with status 3.
//
// Run with an argument "child" it is the child: it echoes its standard input
// in upper case and exits with status 7.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func child() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println(strings.ToUpper(in.Text()))
	}
	os.Exit(7)
}

// Workers square numbers from one channel into another.
func channels() {
	jobs := make(chan int)
	results := make(chan int, 4)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				results <- n * n
			}
		}()
	}
	go func() {
		for i := 1; i <= 100; i++ {
			jobs <- i
		}
		close(jobs)
	}()
	go func() {
		wg.Wait()
		close(results)
	}()
	sum := 0
	for r := range results {
		sum += r
	}
	fmt.Println("sum of squares:", sum)
}

// Many goroutines contend on a mutex and an atomic counter.
func mutexes() {
	var mu sync.Mutex
	var count int
	var atomicCount int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				mu.Lock()
				count++
				mu.Unlock()
				atomic.AddInt64(&atomicCount, 1)
			}
		}()
	}
	wg.Wait()
	fmt.Println("mutex count:", count, "atomic count:", atomic.LoadInt64(&atomicCount))

	// A condition variable hands a value over.
	cond := sync.NewCond(&mu)
	ready := false
	go func() {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		ready = true
		mu.Unlock()
		cond.Broadcast()
	}()
	mu.Lock()
	for !ready {
		cond.Wait()
	}
	mu.Unlock()
	fmt.Println("condition met")

	var once sync.Once
	for i := 0; i < 3; i++ {
		once.Do(func() { fmt.Println("once") })
	}
}

// Timers and sleeps fire in deadline order and not early.
func timers() {
	start := time.Now()
	order := make(chan int, 3)
	for _, ms := range []int{60, 20, 40} {
		ms := ms
		time.AfterFunc(time.Duration(ms)*time.Millisecond, func() { order <- ms })
	}
	got := []int{<-order, <-order, <-order}
	fmt.Println("timer order:", got)

	timer := time.NewTimer(time.Hour)
	fmt.Println("stopped before firing:", timer.Stop())

	ticker := time.NewTicker(5 * time.Millisecond)
	ticks := 0
	for range ticker.C {
		ticks++
		if ticks == 5 {
			break
		}
	}
	ticker.Stop()
	fmt.Println("ticks:", ticks)

	select {
	case <-time.After(30 * time.Millisecond):
		fmt.Println("timeout")
	case <-make(chan int):
		fmt.Println("impossible")
	}
	time.Sleep(20 * time.Millisecond)
	fmt.Println("not early:", time.Since(start) >= 130*time.Millisecond)
}

// A child process through os/exec, with pipes and an exit status.
func children(self string) {
	cmd := exec.Command(self, "child")
	cmd.Stdin = strings.NewReader("hello\nworld\n")
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		fmt.Println("child status:", exitErr.ExitCode())
	} else {
		fmt.Println("child error:", err)
	}
	fmt.Printf("child output: %q\n", string(out))

	_, err = exec.Command("/nonexistent/program").Output()
	fmt.Println("missing program:", errors.Is(err, os.ErrNotExist))
}

// Files: create, write, read back, list, rename, remove.
func files() {
	dir, err := os.MkdirTemp("", "runtime-go-")
	if err != nil {
		fmt.Println("mkdirtemp:", err)
		return
	}
	defer os.RemoveAll(dir)
	for i, name := range []string{"b.txt", "a.txt", "c.txt"} {
		data := strings.Repeat(name, i+1)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			fmt.Println("write:", err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		info, _ := e.Info()
		names = append(names, fmt.Sprintf("%s:%d", e.Name(), info.Size()))
	}
	sort.Strings(names)
	fmt.Println("files:", names)
	if err := os.Rename(filepath.Join(dir, "a.txt"), filepath.Join(dir, "z.txt")); err != nil {
		fmt.Println("rename:", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "z.txt"))
	fmt.Printf("read back: %q %v\n", data, err)
	_, err = os.Stat(filepath.Join(dir, "a.txt"))
	fmt.Println("old name gone:", errors.Is(err, os.ErrNotExist))
}

// signal.Notify: signals sent to ourselves arrive on a channel.
func signals() {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGHUP)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	fmt.Println("got:", <-ch)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	fmt.Println("got:", <-ch)
	signal.Stop(ch)
	signal.Ignore(syscall.SIGUSR2)
	syscall.Kill(os.Getpid(), syscall.SIGUSR2)
	time.Sleep(10 * time.Millisecond)
	fmt.Println("still running")
}

// A goroutine that spins without blocking must not starve the others.
func spinning() {
	var stop int32
	done := make(chan bool)
	go func() {
		for atomic.LoadInt32(&stop) == 0 {
		}
		done <- true
	}()
	time.Sleep(20 * time.Millisecond)
	atomic.StoreInt32(&stop, 1)
	fmt.Println("spinner stopped:", <-done)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		child()
	}
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	channels()
	mutexes()
	timers()
	children(self)
	files()
	signals()
	spinning()
	os.Exit(3)
}
