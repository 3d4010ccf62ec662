/* MPSC mailbox: a locked list plus a wake-up hook (uv_async_send on the owner). */
#include "outpost/core.h"

void op_mailbox_init(struct op_mailbox *mb, void (*wake)(void *), void *arg)
{
    pthread_mutex_init(&mb->lock, NULL);
    mb->head = mb->tail = NULL;
    mb->wake = wake;
    mb->wake_arg = arg;
}

void op_mailbox_fini(struct op_mailbox *mb)
{
    pthread_mutex_destroy(&mb->lock);
}

void op_mailbox_post(struct op_mailbox *mb, struct op_msg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&mb->lock);
    if (mb->tail != NULL)
        mb->tail->next = m;
    else
        mb->head = m;
    mb->tail = m;
    /* wake under the lock: the owner may clear wake before closing its handle */
    if (mb->wake != NULL)
        mb->wake(mb->wake_arg);
    pthread_mutex_unlock(&mb->lock);
}

size_t op_mailbox_drain(struct op_mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    struct op_msg *m = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->lock);
    size_t n = 0;
    while (m != NULL) {
        struct op_msg *next = m->next; /* run() may free m */
        m->run(m);
        m = next;
        n++;
    }
    return n;
}
