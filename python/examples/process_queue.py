"""Two writer processes and a reader talking through a Queue (the articles'
program, with `import shmprim as mp`)."""
import shmprim as mp


def process_write(q, urls):
    for url in urls:
        q.put(url)
        print("Put %s to queue..." % url, flush=True)


def process_read(q, n):
    for _ in range(n):
        print("Get %s from queue..." % q.get(True), flush=True)


if __name__ == "__main__":
    q = mp.Queue()
    w1 = mp.Process(target=process_write, args=(q, ["url1", "url2", "url3"]))
    w2 = mp.Process(target=process_write, args=(q, ["url4", "url5", "url6"]))
    r = mp.Process(target=process_read, args=(q, 6))
    w1.start()
    w2.start()
    r.start()
    w1.join()
    w2.join()
    r.join()
