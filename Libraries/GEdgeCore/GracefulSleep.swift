import ServiceLifecycle

extension Task where Success == Never, Failure == Never {
    /// Sleeps for `duration`, or until the service group shuts down gracefully or the task is
    /// cancelled, whichever comes first: a periodic loop waits out its interval without
    /// holding up a SIGTERM (a service group stops its services one after another).
    public static func sleepUnlessShuttingDown(for duration: Duration) async {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }
}
