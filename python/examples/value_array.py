"""A shared counter (Value) and array (Array) updated by a child process."""
import shmprim as mp


def f(n, a):
    with n.get_lock():
        n.value += 1
    for i in range(len(a)):
        a[i] = -a[i]


if __name__ == "__main__":
    num = mp.Value("d", 0.0)
    arr = mp.Array("i", range(10))
    p = mp.Process(target=f, args=(num, arr))
    p.start()
    p.join()
    print(num.value, arr[:])
