/* common/list: an intrusive doubly linked list, as the Linux kernel's
 * list.h: the links live inside the listed struct (a struct gc_link
 * member), so linking and unlinking allocate nothing and cannot fail, and
 * one struct can sit in several lists through several members.
 *
 *   struct item { ...; struct gc_link queued; };
 *   struct gc_list queue;                 gc_list_init(&queue);
 *   gc_list_push(&queue, &it->queued);    append (FIFO order)
 *   gc_list_remove(&queue, &it->queued);  unlink (the item must be in it)
 *   struct item *first = GC_LIST_FIRST(&queue, struct item, queued);
 *   for (struct gc_link *k = queue.head; k; k = k->next)
 *           use(GC_CONTAINER(k, struct item, queued));
 *
 * The list keeps its length. A link not in any list has both pointers NULL
 * (gc_list_remove leaves it so). Nothing here allocates or touches Lua:
 * safe inside libcurl and libmicrohttpd callbacks. Header-only: every
 * function is static inline. */
#ifndef GC_COMMON_LIST_H
#define GC_COMMON_LIST_H

#include <stddef.h>

struct gc_link {
	struct gc_link *prev, *next;
};

struct gc_list {
	struct gc_link *head, *tail;
	size_t n;
};

/* The struct of type `type` whose member `member` is the link at p. */
#define GC_CONTAINER(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* The first item of list l (a struct of type `type` linked through
 * `member`), or NULL when l is empty. */
#define GC_LIST_FIRST(l, type, member) \
	((l)->head ? GC_CONTAINER((l)->head, type, member) : (type *)NULL)

static inline void gc_list_init(struct gc_list *l)
{
	l->head = l->tail = NULL;
	l->n = 0;
}

/* Append k (in no list) to the end of l. */
static inline void gc_list_push(struct gc_list *l, struct gc_link *k)
{
	k->next = NULL;
	k->prev = l->tail;
	if (l->tail)
		l->tail->next = k;
	else
		l->head = k;
	l->tail = k;
	l->n++;
}

/* Unlink k, which is in l. */
static inline void gc_list_remove(struct gc_list *l, struct gc_link *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		l->head = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else
		l->tail = k->prev;
	k->prev = k->next = NULL;
	l->n--;
}

#endif
