#pragma once

// Clang thread-safety annotations (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html),
// named as in that document and in Abseil's thread_annotations.h. Under clang
// with -Wthread-safety the compiler checks that a member marked
// TREATY_GUARDED_BY(mu_) is only touched with mu_ held; under g++ they expand
// to nothing. scripts/check-thread-safety.sh runs the check in CI.
//
// Use them with treaty::Mutex (common/mutex.h): libstdc++'s std::mutex
// carries no annotations, so the analysis cannot see it being locked.

#if defined(__clang__)
#define TREATY_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TREATY_THREAD_ANNOTATION(x)
#endif

// A class that is a lock (a "capability").
#define TREATY_CAPABILITY(name) TREATY_THREAD_ANNOTATION(capability(name))
// An RAII class that holds a capability for its lifetime.
#define TREATY_SCOPED_CAPABILITY TREATY_THREAD_ANNOTATION(scoped_lockable)
// A data member read or written only with `mu` held.
#define TREATY_GUARDED_BY(mu) TREATY_THREAD_ANNOTATION(guarded_by(mu))
// A pointer member whose pointee is touched only with `mu` held.
#define TREATY_PT_GUARDED_BY(mu) TREATY_THREAD_ANNOTATION(pt_guarded_by(mu))
// A function the caller must call with the capabilities held.
#define TREATY_REQUIRES(...) TREATY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// A function the caller must call without the capabilities held (it takes them).
#define TREATY_EXCLUDES(...) TREATY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// A function that takes / releases the capability and returns holding / not holding it.
#define TREATY_ACQUIRE(...) TREATY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define TREATY_RELEASE(...) TREATY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TREATY_TRY_ACQUIRE(...) TREATY_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// Asserts to the analysis that the capability is held (checked at run time by the callee).
#define TREATY_ASSERT_CAPABILITY(x) TREATY_THREAD_ANNOTATION(assert_capability(x))
// A function that returns a reference to the capability.
#define TREATY_RETURN_CAPABILITY(x) TREATY_THREAD_ANNOTATION(lock_returned(x))
// Turns the analysis off for one function; say why next to every use.
#define TREATY_NO_THREAD_SAFETY_ANALYSIS TREATY_THREAD_ANNOTATION(no_thread_safety_analysis)
