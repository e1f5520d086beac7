/* logformat.c: (stub) */
#include "connectd.h"
