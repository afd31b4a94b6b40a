"""SIGTERM always stops a process whose main thread waits on its stop event. (A handler calling
Event.set() directly was seen to deadlock `treasury up` on the lock Event.wait holds: py-spy showed
the handler blocked in Condition.__enter__ under Event.wait, and every later signal ignored.)"""

import signal
import subprocess
import sys
import textwrap
import time

WAITER = textwrap.dedent("""
    import sys, threading
    from runtime.signals import stop_on_signals
    stop = threading.Event()
    stop_on_signals(stop)
    print("ready", flush=True)
    while not stop.wait(0.0001):   # the main thread is inside Event.wait nearly all the time
        pass
""")


def stops_within(seconds: float) -> bool:
    proc = subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(seconds)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def test_sigterm_always_stops_a_waiting_process():
    assert all(stops_within(5) for _ in range(15))
