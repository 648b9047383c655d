// Package cpus owns one question: how many CPUs may this process use? It
// answers it for `instances: auto`, which runs one copy of a cluster job
// per CPU the container is given — its cgroup CPU quota, capped by its CPU
// affinity — and never per core of the host, which a container limited to
// 2 CPUs on a 64-core machine would otherwise get (PM2 issue #4347: 64
// Node processes fighting over 2 CPUs' worth of time).
//
// It reads cgroup v1 (the cpu controller's cpu.cfs_quota_us and
// cpu.cfs_period_us) and v2 (cpu.max), finding the hierarchy through
// /proc/self/cgroup and /proc/self/mountinfo as the kernel presents them
// inside the container, and walks from the process's cgroup up to the
// mount's root, since a quota set on a parent bounds every child. Where a
// machine has both (a hybrid host), the v1 cpu controller is the one that
// enforces quotas, so it is the one read.
//
// Auto reads the files each time it is called and keeps no state; it is
// safe to call from any goroutine.
package cpus
