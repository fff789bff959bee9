"""Processes that print one at a time under a shared Lock."""
import shmprim as mp


def printer(item, lock):
    lock.acquire()
    try:
        print(item, flush=True)
    finally:
        lock.release()


if __name__ == "__main__":
    lock = mp.Lock()
    ps = [mp.Process(target=printer, args=(item, lock)) for item in ["chinese", "english", "spanish", "japanese"]]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
