"""A sender and a receiver at the two ends of a Pipe; the receiver sees the
end of the stream (EOFError) when the sender is done."""
import os

import shmprim as mp


def process_send(pipe, urls):
    for url in urls:
        print("Process (%s) send: %s" % (os.getpid(), url), flush=True)
        pipe.send(url)
    pipe.close()


def process_recv(pipe):
    while True:
        try:
            print("Process (%s) recv: %s" % (os.getpid(), pipe.recv()), flush=True)
        except EOFError:
            return


if __name__ == "__main__":
    pipe = mp.Pipe()
    p1 = mp.Process(target=process_send, args=(pipe[0], ["url" + str(i) for i in range(10)]))
    p2 = mp.Process(target=process_recv, args=(pipe[1],))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
