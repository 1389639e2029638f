"""The UI's words in Russian (the manual's labels, the default) and English.

The language is chosen with ``?lang=en`` / ``?lang=ru`` on any page (kept in the ``webbo_lang``
cookie) and otherwise follows that cookie; Russian when there is neither. A key missing from the
table is a bug that a test catches (it would show the key itself).

Counted words have their forms separated by ``|``: Russian one|few|many ("1 майнер, 3 майнера,
5 майнеров"), English one|other; the form is chosen by the ``n`` the text is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT", "LANGS", "TEXT", "lang_of", "translator"]

LANGS = ("ru", "en")
DEFAULT = "ru"
COOKIE = "webbo_lang"

TEXT: dict[str, tuple[str, str]] = {
    # -- shell
    "app.name": ("WebboMonitor", "WebboMonitor"),
    "nav.label": ("Основное меню", "Main menu"),
    "nav.miners": ("Майнеры", "Miners"),
    "nav.map": ("Карта стоек", "Rack map"),
    "nav.meters": ("Счетчики", "Meters"),
    "nav.sites": ("Площадки", "Sites"),
    "sites.title": ("Площадки", "Sites"),
    "sites.intro": ("Агенты площадок, которые обслуживает этот хаб: когда каждый из них выходил "
                    "на связь, сколько у него майнеров и что он сообщал.",
                    "The site agents this hub serves: when each was last heard from, how many "
                    "miners it has and what it reported."),
    "sites.none": ("Ни одна площадка ещё не вышла на связь. Проверьте [cluster] на агентах "
                   "площадок и [hub] здесь (docs/deploy.md).",
                   "No site has been heard from yet. Check [cluster] on the site agents and "
                   "[hub] here (docs/deploy.md)."),
    "sites.site": ("Площадка", "Site"),
    "sites.state": ("Состояние", "State"),
    "sites.state.online": ("на связи", "online"),
    "sites.state.stale": ("нет связи", "silent"),
    "sites.state.offline": ("не выходила на связь", "never heard from"),
    "sites.state.conflict": ("конфликт имени", "name conflict"),
    "sites.heartbeat": ("Последний сигнал", "Last heartbeat"),
    "sites.agent": ("Агент", "Agent"),
    "sites.miners": ("Майнеры: в работе / всего", "Miners: ok / total"),
    "sites.network": ("Группы / диапазоны", "Groups / ranges"),
    "sites.meters": ("Счетчики", "Meters"),
    "sites.stream": ("JetStream", "JetStream"),
    "sites.no_stream": ("нет (без буфера на время обрыва)", "none (nothing kept during an outage)"),
    "sites.alerts": ("Последние оповещения площадок", "The sites' latest alerts"),
    "sites.no_alerts": ("Оповещений не было.", "No alerts so far."),
    "sites.raised": ("Возникло", "Raised"),
    "sites.received": ("Получено", "Received"),
    "sites.alert": ("Оповещение", "Alert"),
    "sites.late": ("Запоздавшие ответы (записаны, не применены)",
                   "Late answers (recorded, not applied)"),
    "nav.settings": ("Настройки", "Settings"),
    "nav.settings_miners": ("Настройки майнеров", "Miner settings"),
    "nav.settings_meters": ("Настройки счетчиков", "Meter settings"),
    "nav.security": ("Безопасность", "Security"),
    "nav.logout": ("Выход", "Log out"),
    "nav.user_menu": ("Меню пользователя {user}", "User menu of {user}"),
    "nav.language": ("Язык", "Language"),
    "skip": ("Перейти к содержимому", "Skip to content"),
    "live.paused": ("Обновление приостановлено", "Live updates paused"),
    "live.failed": ("Нет связи с агентом, повтор…", "Cannot reach the agent, retrying…"),
    "common.save": ("Сохранить", "Save"),
    "common.cancel": ("Отмена", "Cancel"),
    "common.confirm": ("Подтвердить", "Confirm"),
    "common.close": ("Закрыть", "Close"),
    "common.delete": ("Удалить", "Delete"),
    "common.name": ("Название", "Name"),
    "common.yes": ("да", "yes"),
    "common.no": ("нет", "no"),
    "common.never": ("никогда", "never"),
    "common.none": ("—", "—"),
    "common.ago": ("{age} назад", "{age} ago"),
    "common.error": ("Ошибка", "Error"),
    "common.back": ("Назад", "Back"),
    "common.all": ("Все", "All"),
    # -- outputs (the banner on every page)
    "outputs.dropping": ("Вывод «{output}»: буфер переполнен, самые старые метрики отбрасываются "
                         "(с {since}).",
                         "Output “{output}”: its buffer is full, the oldest metrics are being "
                         "dropped (since {since})."),
    "outputs.dropped": ("Отброшено метрик: {count}.", "Metrics dropped: {count}."),
    "outputs.failing": ("Вывод «{output}» не может записать данные: {error}",
                        "Output “{output}” cannot write: {error}"),
    "outputs.waiting": ("Метрик в буфере: {count}, самая старая ждёт {age}.",
                        "Metrics waiting in its buffer: {count}, the oldest for {age}."),
    "outputs.where_disk": ("Буфер на диске: данные переживут перезапуск агента.",
                           "The buffer is on disk: it survives a restart of the agent."),
    "outputs.where_memory": ("Буфер в памяти: при перезапуске агента он будет потерян "
                             "(buffer = \"disk\" в webbo.toml, см. docs/deploy.md).",
                             "The buffer is in memory: a restart of the agent loses it "
                             "(buffer = \"disk\" in webbo.toml, see docs/deploy.md)."),
    # -- login
    "login.title": ("Вход", "Log in"),
    "login.user": ("Имя пользователя", "User name"),
    "login.password": ("Пароль", "Password"),
    "login.submit": ("Войти", "Log in"),
    "login.bad": ("Неверное имя пользователя или пароль.", "Wrong user name or password."),
    "login.locked": ("Слишком много неудачных попыток. Повторите через {seconds} с.",
                     "Too many failed attempts. Try again in {seconds} s."),
    "login.stale": ("Форма устарела. Попробуйте ещё раз.", "The form expired. Please try again."),
    "login.hint": ("Пароль пользователя miner показывается один раз при первом запуске; "
                   "сменить его: webbo user set-password.",
                   "The miner user's password is shown once at the first start; change it "
                   "with webbo user set-password."),
    "login.expired": ("Сеанс завершён. Войдите снова.", "Your session ended. Please log in."),
    # -- states
    "state.ok": ("в работе", "ok"),
    "state.new": ("новый", "new"),
    "state.unreachable": ("недоступен", "unreachable"),
    "state.timeout": ("таймаут", "timed out"),
    "state.error": ("ошибка", "error"),
    "state.unrecognised": ("не распознан", "unrecognised"),
    "state.silent": ("молчит", "silent"),
    "state.pending": ("не опрошен", "not visited yet"),
    "state.help.unrecognised": ("Адрес отвечает, но ни один драйвер его не распознал",
                                "Something answers here, but no driver recognises it"),
    "state.help.timeout": ("Устройство принимает соединение, но не отвечает вовремя",
                           "The device accepts connections but does not answer in time"),
    "state.help.silent": ("По адресу никто не отвечает; повтор через минуту",
                          "Nothing answers here; tried again after a minute"),
    "state.help.pending": ("Адрес ещё не опрошен", "Not visited by the sweep yet"),
    "addr.ports": ("порты {ports}", "ports {ports}"),
    "addr.no_ports": ("порты не открыты", "no open port"),
    "addr.until": ("повтор в {time}", "next try at {time}"),
    "addr.since": ("с {time}", "since {time}"),
    "addr.failing_since": ("сбой с {time}", "failing since {time}"),
    "miners.addresses": ("{n} адрес|{n} адреса|{n} адресов", "{n} address|{n} addresses"),
    "miners.matching": ("подходят", "matching"),
    "map.others": ("ещё {n} без ответа или не опрошено", "{n} more silent or not visited"),
    "banner.no_driver": ("Диапазоны заданы, но ни один драйвер майнеров не включён — опрос не "
                         "идёт. Включите драйверы своих марок ([[inputs.bitmain_http]], "
                         "[[inputs.whatsminer]], [[inputs.cgminer]]) в {path}.",
                         "Ranges are set but no miner driver is enabled, so nothing is swept. "
                         "Enable the drivers of your makes ([[inputs.bitmain_http]], "
                         "[[inputs.whatsminer]], [[inputs.cgminer]]) in {path}."),
    "banner.reload_error": ("Последнее изменение конфигурации не применено, работает прежняя: "
                            "{error}", "The last config change was refused; the previous one "
                            "stays in force: {error}"),
    "state.stale": ("нет связи с площадкой", "site silent"),
    "state.all": ("Все состояния", "All states"),
    "mode.normal": ("обычный", "normal"),
    "mode.sleep": ("сон", "sleep"),
    "mode.low_power": ("экономный", "low power"),
    "mode.unknown": ("неизвестен", "unknown"),
    "led.on": ("мигает", "blinking"),
    "led.off": ("выкл", "off"),
    # -- miners table
    "miners.title": ("Майнеры", "Miners"),
    "miners.search": ("Поиск", "Search"),
    "miners.search_hint": ("IP, MAC, модель, прошивка, пул…", "IP, MAC, model, firmware, pool…"),
    "miners.group": ("Группа", "Group"),
    "miners.range": ("Диапазон", "Range"),
    "miners.state": ("Состояние", "State"),
    "miners.all_groups": ("Все группы", "All groups"),
    "miners.all_ranges": ("Все диапазоны", "All ranges"),
    "miners.page_size": ("Строк на странице", "Rows per page"),
    "miners.filter": ("Показать", "Apply"),
    "miners.reset": ("Сбросить", "Reset"),
    "miners.caption": ("Майнеры: {shown} из {total}", "Miners: {shown} of {total}"),
    "miners.empty": ("Майнеров нет.", "No miners."),
    "miners.empty_ranges": ("Диапазоны IP-адресов ещё не заданы: откройте «Настройки ▸ "
                            "Настройки майнеров», укажите диапазон и нажмите «Сохранить».",
                            "No IP ranges yet: open Settings ▸ Miner settings, add a range "
                            "and press Save."),
    "miners.empty_filter": ("Под условия не подходит ни один майнер.",
                            "No miner matches the filters."),
    "miners.empty_sweep": ("Идёт опрос диапазонов: найденные майнеры появятся здесь.",
                           "The ranges are being swept: miners appear here as they are found."),
    "miners.col.select": ("Выбрать", "Select"),
    "miners.col.state": ("Сост.", "State"),
    "miners.col.ip": ("IP / MAC", "IP / MAC"),
    "miners.col.mac": ("MAC", "MAC"),
    "miners.col.model": ("Модель / прошивка", "Model / firmware"),
    "miners.col.firmware": ("Прошивка", "Firmware"),
    "miners.col.place": ("Группа / диапазон", "Group / range"),
    "miners.col.site": ("Площадка", "Site"),
    "miners.site": ("Площадка", "Site"),
    "miners.all_sites": ("Все площадки", "All sites"),
    "miners.col.hashrate": ("Хешрейт, TH/s", "Hashrate, TH/s"),
    "miners.col.temp_long": ("Температура плат / чипов, °C", "Board / chip temperature, °C"),
    "miners.col.power": ("Мощн., Вт", "Power, W"),
    "miners.col.efficiency": ("Дж/TH", "J/TH"),
    "miners.col.temp": ("Плата/чип, °C", "Board/chip, °C"),
    "miners.col.fans": ("Вент., об/мин", "Fans, RPM"),
    "miners.col.fans_long": ("Вентиляторы: мин–макс, об/мин", "Fans: min–max, RPM"),
    "miners.col.mode": ("Режим", "Mode"),
    "miners.col.led": ("LED", "LED"),
    "miners.col.pool": ("Пул", "Pool"),
    "miners.col.uptime": ("Аптайм", "Uptime"),
    "miners.col.errors": ("Ошибки", "Errors"),
    "miners.sort_by": ("Сортировать по: {column}", "Sort by {column}"),
    "miners.select_row": ("Выбрать {ip}", "Select {ip}"),
    "miners.select_page": ("Выбрать все на странице", "Select all on this page"),
    "miners.selected": ("Выбрано: {n}", "Selected: {n}"),
    "miners.select_all_matching": ("Выбрать {n} майнер по фильтру|Выбрать все {n} майнера по "
                                   "фильтру|Выбрать все {n} майнеров по фильтру",
                                   "Select the {n} matching miner|Select all {n} matching "
                                   "miners"),
    "miners.clear_selection": ("Снять выбор", "Clear selection"),
    "miners.of_expected": ("{pct}% от ожидаемого", "{pct}% of expected"),
    "miners.pager": ("Страницы", "Pages"),
    "miners.page_of": ("Стр. {page} из {pages}", "Page {page} of {pages}"),
    "miners.prev": ("‹ Назад", "‹ Previous"),
    "miners.next": ("Вперёд ›", "Next ›"),
    "miners.summary": ("Итого", "Summary"),
    "miners.total": ("Всего", "Total"),
    "miners.sum_hashrate": ("Хешрейт", "Hashrate"),
    "miners.sum_power": ("Мощность", "Power"),
    "miners.avg_eff": ("Эффективность", "Efficiency"),
    "miners.updated": ("Обновлено {time}", "Updated {time}"),
    # -- actions
    "act.title": ("Действия с выбранными", "Actions on the selection"),
    "act.led_on": ("Включить мигание", "Blink LEDs"),
    "act.led_off": ("Выключить мигание", "Stop blinking"),
    "act.reboot": ("Перезагрузить", "Reboot"),
    "act.work_mode": ("Режим работы…", "Work mode…"),
    "act.pools": ("Пулы…", "Pools…"),
    "act.confirm_title": ("Подтверждение", "Please confirm"),
    "act.confirm.led_on": ("Включить мигание светодиодов на {n} майнере?|Включить мигание "
                           "светодиодов на {n} майнерах?|Включить мигание светодиодов на {n} "
                           "майнерах?", "Start blinking the LEDs of {n} miner?|Start blinking "
                           "the LEDs of {n} miners?"),
    "act.confirm.led_off": ("Выключить мигание светодиодов на {n} майнере?|Выключить мигание "
                            "светодиодов на {n} майнерах?|Выключить мигание светодиодов на {n} "
                            "майнерах?", "Stop blinking the LEDs of {n} miner?|Stop blinking "
                            "the LEDs of {n} miners?"),
    "act.confirm.reboot": ("Перезагрузить {n} майнер? Он перестанет майнить на несколько "
                           "минут.|Перезагрузить {n} майнера? Они перестанут майнить на "
                           "несколько минут.|Перезагрузить {n} майнеров? Они перестанут "
                           "майнить на несколько минут.", "Reboot {n} miner? It stops mining "
                           "for a few minutes.|Reboot {n} miners? They stop mining for a few "
                           "minutes."),
    "act.confirm.work_mode": ("Установить режим работы на {n} майнере:|Установить режим работы "
                              "на {n} майнерах:|Установить режим работы на {n} майнерах:",
                              "Set the work mode of {n} miner to:|Set the work mode of {n} "
                              "miners to:"),
    "act.confirm.pools": ("Установить пулы на {n} майнере. Пустой слот с отметкой «не менять» "
                          "оставляет пул устройства.|Установить пулы на {n} майнерах. Пустой "
                          "слот с отметкой «не менять» оставляет пул устройства.|Установить "
                          "пулы на {n} майнерах. Пустой слот с отметкой «не менять» оставляет "
                          "пул устройства.",
                          "Set the pools of {n} miner. A slot marked \"keep\" leaves the "
                          "device's pool as it is.|Set the pools of {n} miners. A slot marked "
                          "\"keep\" leaves the device's pool as it is."),
    "act.mode": ("Режим", "Mode"),
    "act.pool_slot": ("Пул {n}", "Pool {n}"),
    "act.pool_keep": ("не менять", "keep"),
    "act.pool_address": ("Адрес (URL)", "Address (URL)"),
    "act.pool_worker": ("Воркер", "Worker"),
    "act.pool_passwd": ("Пароль", "Password"),
    "act.pool_suffix": ("Суффикс воркера", "Worker suffix"),
    "act.suffix.no_change": ("не менять", "keep the device's"),
    "act.suffix.ip": ("по IP (123x234)", "from the IP (123x234)"),
    "act.suffix.empty": ("без суффикса", "none"),
    "act.running": ("Выполняется: {done} из {n}…", "Running: {done} of {n}…"),
    "act.results": ("Результаты: {action}", "Results: {action}"),
    "act.summary": ("успешно {ok}, с ошибкой {failed}", "{ok} succeeded, {failed} failed"),
    "act.col.result": ("Результат", "Result"),
    "act.ok": ("выполнено", "done"),
    "act.failed": ("ошибка", "failed"),
    "act.none": ("Ничего не выбрано.", "Nothing is selected."),
    "act.task_failed": ("Задача не выполнена: {error}", "The task failed: {error}"),
    # -- miner page
    "miner.title": ("Майнер {ip}", "Miner {ip}"),
    "miner.not_found": ("Майнер {mac} не найден: его нет в инвентаре.",
                        "Miner {mac} is not in the inventory."),
    "miner.overview": ("Сводка", "Overview"),
    "miner.chart": ("Хешрейт и температуры за последнее время", "Hashrate and temperatures, "
                    "recent past"),
    "miner.chart_empty": ("Данных пока нет: график появится после нескольких опросов.",
                          "No data yet: the chart appears after a few polls."),
    "miner.chart_label": ("График: хешрейт от {lo} до {hi} TH/s, температура чипов до {t} °C "
                          "за {span}", "Chart: hashrate {lo} to {hi} TH/s, chip temperature up "
                          "to {t} °C over {span}"),
    "miner.boards": ("Платы", "Hash boards"),
    "miner.pools": ("Пулы", "Pools"),
    "miner.errors": ("Коды ошибок", "Error codes"),
    "miner.no_errors": ("Ошибок нет.", "No error codes."),
    "miner.identity": ("Устройство", "Device"),
    "miner.no_reading": ("Данных опроса пока нет.", "No successful poll yet."),
    "miner.web": ("Веб-интерфейс майнера", "The miner's web interface"),
    "miner.expected": ("ожидаемый", "expected"),
    "miner.accepted": ("Принято / отклонено", "Accepted / rejected"),
    "miner.hw_errors": ("HW-ошибки", "HW errors"),
    "miner.env": ("Темп. воздуха", "Intake temp"),
    "miner.psu_fan": ("Вент. БП", "PSU fan"),
    "miner.power_limit": ("Лимит мощности", "Power limit"),
    "miner.board": ("Плата", "Board"),
    "miner.chips": ("Чипы", "Chips"),
    "miner.frequency": ("Частота, МГц", "Frequency, MHz"),
    "miner.board_temp": ("Плата, °C", "Board, °C"),
    "miner.chip_temp": ("Чип, °C", "Chip, °C"),
    "miner.pool_url": ("Адрес", "URL"),
    "miner.pool_user": ("Воркер", "Worker"),
    "miner.pool_status": ("Статус", "Status"),
    "miner.pool_active": ("Активен", "Active"),
    "miner.code": ("Код", "Code"),
    "miner.message": ("Описание", "Message"),
    "miner.time": ("Время", "Time"),
    "miner.make": ("Производитель", "Make"),
    "miner.hostname": ("Имя хоста", "Hostname"),
    "miner.serial": ("Серийный номер", "Serial number"),
    "miner.driver": ("Драйвер", "Driver"),
    "miner.first_seen": ("Найден", "First seen"),
    "miner.last_seen": ("Последний ответ", "Last answer"),
    "miner.failures": ("Неудачных опросов подряд", "Failed polls in a row"),
    "miner.mac_source": ("Источник MAC", "MAC source"),
    "chart.hashrate": ("Хешрейт, TH/s", "Hashrate, TH/s"),
    "chart.expected": ("Ожидаемый", "Expected"),
    "chart.board": ("Плата max, °C", "Board max, °C"),
    "chart.chip": ("Чип max, °C", "Chip max, °C"),
    # -- map
    "map.title": ("Карта стоек", "Rack map"),
    "map.color_by": ("Цвет по", "Colour by"),
    "map.by_temp": ("температуре", "temperature"),
    "map.by_hash": ("хешрейту от ожидаемого", "hashrate vs expected"),
    "map.unplaced": ("Вне диапазонов", "Outside every range"),
    "map.legend": ("Легенда", "Legend"),
    "map.offline": ("нет связи / ошибка", "offline / error"),
    "map.nodata": ("нет данных", "no data"),
    "map.empty": ("Майнеров пока нет.", "No miners yet."),
    "map.count": ("{n} майнер|{n} майнера|{n} майнеров", "{n} miner|{n} miners"),
    # -- settings: miners
    "net.title": ("Настройки майнеров", "Miner settings"),
    "net.intro": ("Группы диапазонов — это помещения, диапазоны — стеллажи. После нажатия "
                  "«Сохранить» начнётся опрос майнеров в указанных диапазонах.",
                  "Groups of ranges are rooms, ranges are racks. Press Save and the miners in "
                  "these ranges are swept."),
    "net.group": ("Группа {n}", "Group {n}"),
    "net.group_name": ("Название группы", "Group name"),
    "net.range_name": ("Название диапазона", "Range name"),
    "net.first": ("Первый адрес", "First address"),
    "net.last": ("Последний адрес", "Last address"),
    "net.add_group": ("Добавить группу", "Add group"),
    "net.del_group": ("Удалить группу", "Delete group"),
    "net.add_range": ("Добавить диапазон", "Add range"),
    "net.del_range": ("Удалить диапазон", "Delete range"),
    "net.no_groups": ("Групп нет: опрос майнеров выключен. Нажмите «Добавить группу».",
                      "No groups: no miner is swept. Press Add group."),
    "net.no_ranges": ("В группе нет диапазонов.", "This group has no ranges."),
    "net.saved": ("Сохранено: {groups}, {ranges}, {addresses}. Опрос начался — майнеры "
                  "появятся на странице «Майнеры».",
                  "Saved: {groups}, {ranges}, {addresses}. The sweep has started: miners "
                  "appear on the Miners page."),
    "net.n_groups": ("{n} группа|{n} группы|{n} групп", "{n} group|{n} groups"),
    "net.n_ranges": ("{n} диапазон|{n} диапазона|{n} диапазонов", "{n} range|{n} ranges"),
    "net.invalid": ("Не сохранено: исправьте отмеченные поля.",
                    "Not saved: correct the marked fields."),
    "net.unsaved": ("Есть несохранённые изменения.", "There are unsaved changes."),
    "net.addresses": ("{n} адрес|{n} адреса|{n} адресов", "{n} address|{n} addresses"),
    "net.err.ip": ("не IPv4-адрес: {value}", "not an IPv4 address: {value}"),
    "net.err.order": ("{last} раньше первого адреса {first}",
                      "{last} is before the first address {first}"),
    "net.err.overlap": ("пересекается с диапазоном {other}", "overlaps range {other}"),
    "net.where": ("группа {g}, диапазон {r}", "group {g}, range {r}"),
    # -- settings: meters
    "msettings.title": ("Настройки счетчиков", "Meter settings"),
    "msettings.add_title": ("Добавление счетчика", "Add a meter"),
    "msettings.refresh": ("Обновить порты", "Refresh ports"),
    "msettings.all_ports": ("все порты, не только USB", "all ports, not only USB"),
    "msettings.port": ("Порт", "Port"),
    "msettings.port_hint": ("Выберите из списка после «Обновить порты» или введите путь, "
                            "например /dev/ttyUSB0.", "Pick one after Refresh ports or type a "
                            "path such as /dev/ttyUSB0."),
    "msettings.ports_found": ("Найдено портов: {n}", "Ports found: {n}"),
    "msettings.ports_none": ("Порты не найдены.", "No ports found."),
    "msettings.model": ("Модель", "Model"),
    "msettings.serial": ("Серийный номер", "Serial number"),
    "msettings.serial_hint": ("как на корпусе, например 43099131-20",
                              "as on the case, e.g. 43099131-20"),
    "msettings.address": ("Адрес", "Address"),
    "msettings.address_hint": ("сетевой адрес на линии RS-485, 1–240; пусто — заводской (по "
                               "серийному номеру)",
                               "network address on the RS-485 line, 1–240; empty: the "
                               "factory one (from the serial number)"),
    "msettings.access": ("Уровень доступа", "Access level"),
    "msettings.access_1": ("1 — чтение (достаточно для сбора данных)",
                           "1 — read (enough for monitoring)"),
    "msettings.access_2": ("2 — запись", "2 — write"),
    "msettings.password_1": ("Пароль уровня 1", "Level 1 password"),
    "msettings.password_2": ("Пароль уровня 2", "Level 2 password"),
    "msettings.port_settings": ("Настройки порта", "Port settings"),
    "msettings.port_settings_hint": ("В большинстве случаев менять не нужно.",
                                     "Usually there is nothing to change here."),
    "msettings.baudrate": ("Скорость, бод", "Baud rate"),
    "msettings.bytesize": ("Биты данных", "Data bits"),
    "msettings.parity": ("Чётность", "Parity"),
    "msettings.stopbits": ("Стоп-биты", "Stop bits"),
    "msettings.timeout": ("Тайм-аут ответа, с", "Reply timeout, s"),
    "msettings.timeout_hint": ("пусто — по умолчанию", "empty: the default"),
    "msettings.add": ("Добавить устройство", "Add device"),
    "msettings.testing": ("Проверка связи со счетчиком…", "Testing the meter…"),
    "msettings.added": ("Счетчик {serial} отвечает и добавлен.", "Meter {serial} answered and "
                        "was added."),
    "msettings.not_added": ("Счетчик не добавлен: {error}", "The meter was not added: {error}"),
    "msettings.deleted": ("Счетчик {serial} удалён.", "Meter {serial} was removed."),
    "msettings.delete_confirm": ("Удалить счетчик {serial}?", "Remove meter {serial}?"),
    "msettings.list": ("Добавленные счетчики", "Added meters"),
    "msettings.none": ("Счетчики ещё не добавлены.", "No meter has been added yet."),
    "msettings.no_backend": ("Поддержка счетчиков не загружена (плагин mercury не установлен "
                             "или не запустился; см. webbo plugins).",
                             "Meter support is not loaded (the mercury plugin is not installed "
                             "or failed to load; see webbo plugins)."),
    "msettings.state": ("Состояние", "State"),
    # -- meters
    "meters.title": ("Счетчики", "Meters"),
    "meters.none": ("Счетчиков нет: добавьте их в «Настройки ▸ Настройки счетчиков».",
                    "No meters: add them in Settings ▸ Meter settings."),
    "meters.meter": ("Счетчик", "Meter"),
    "meters.state": ("Состояние", "State"),
    "meters.voltage": ("Напряжение, В", "Voltage, V"),
    "meters.current": ("Ток, А", "Current, A"),
    "meters.power": ("Активная мощность, Вт", "Active power, W"),
    "meters.totals": ("Σ", "Σ"),
    "meters.p_total": ("P, Вт", "P, W"),
    "meters.q_total": ("Q, вар", "Q, var"),
    "meters.s_total": ("S, ВА", "S, VA"),
    "meters.pf": ("cos φ", "PF"),
    "meters.freq": ("f, Гц", "f, Hz"),
    "meters.energy": ("Энергия, кВт·ч", "Energy, kWh"),
    "meters.import": ("A+", "A+"),
    "meters.export": ("A−", "A−"),
    "meters.updated": ("Обновлено", "Updated"),
    "meters.state.ok": ("на связи", "online"),
    "meters.state.new": ("ожидание", "waiting"),
    "meters.state.error": ("нет связи", "offline"),
    "meters.phase": ("L{n}", "L{n}"),
    "meters.sum": ("Итого по счетчикам: P = {p}, A+ = {e}", "All meters: P = {p}, A+ = {e}"),
    # -- power (Энергия)
    "nav.power": ("Энергия", "Power"),
    "nav.settings_power": ("Энергия", "Power"),
    "power.title": ("Энергия", "Power"),
    "power.settings_link": ("Настройки вводов", "Feed settings"),
    "power.not_loaded": ("Управление мощностью не загружено (см. webbo plugins).",
                         "Power control is not loaded (see webbo plugins)."),
    "power.no_feeds": ("Вводов нет: добавьте их в «Настройки ▸ Энергия».",
                       "No feeds: add them in Settings ▸ Power."),
    "power.control_of": ("Бюджет: {feed}", "Budget: {feed}"),
    "power.control": ("Бюджет", "Budget"),
    "power.form.budget": ("Бюджет, кВт", "Budget, kW"),
    "power.form.until": ("До (необязательно)", "Until (optional)"),
    "power.form.set": ("Установить", "Set"),
    "power.form.schedule": ("Вернуться к расписанию", "Back to the schedule"),
    "power.form.schedule_hint": ("Снимает бюджет, заданный вручную или через API: действуют "
                                 "расписание, сигналы и бюджет из конфигурации.",
                                 "Drops the budget set by hand or through the API: the "
                                 "schedule, the signals and the config's budget decide again."),
    "power.feed": ("Ввод", "Feed"),
    "power.state": ("Состояние", "State"),
    "power.budget": ("Бюджет, кВт", "Budget, kW"),
    "power.source": ("Источник", "Source"),
    "power.measured": ("Измерено, кВт", "Measured, kW"),
    "power.estimated": ("Оценка, кВт", "Estimated, kW"),
    "power.predicted": ("Прогноз, кВт", "Heading for, kW"),
    "power.deadband": ("Зона нечувствительности, кВт", "Deadband, kW"),
    "power.limit": ("Предел ввода, кВт", "Feed limit, kW"),
    "power.base_load": ("Прочая нагрузка, кВт", "Base load, kW"),
    "power.meters": ("Счетчики", "Meters"),
    "power.sources": ("Источники бюджета", "Budget sources"),
    "power.active": ("Действует", "Active"),
    "power.by_state": ("Майнеры по состояниям", "Miners by state"),
    "power.now": ("Сейчас", "Now"),
    "power.until": ("до {time}", "until {time}"),
    "power.units_hint": ("«≈» — оценка по таблице моделей: майнер не сообщает свою мощность.",
                         "“≈”: estimated from the model table (the miner reports no power)."),
    "power.lv.full": ("Полная мощность", "Full"),
    "power.lv.reduced": ("Снижена", "Reduced"),
    "power.lv.sleeping": ("Спят", "Sleeping"),
    "power.lv.excluded": ("Исключены", "Excluded"),
    "power.lv.in_flight": ("Меняют режим", "Changing"),
    "power.lv.uncertain": ("Исход неизвестен", "Outcome unknown"),
    "power.lv.unreachable": ("Недоступны", "Unreachable"),
    "power.lv.not_controllable": ("Не управляются", "Not controllable"),
    "power.mode.off": ("выключено", "off"),
    "power.mode.dry-run": ("пробный режим", "dry run"),
    "power.mode.on": ("включено", "on"),
    "power.state.new": ("запуск", "starting"),
    "power.state.ok": ("в бюджете", "within budget"),
    "power.state.settling": ("ждёт отклика", "settling"),
    "power.state.shedding": ("снижает", "shedding"),
    "power.state.restoring": ("восстанавливает", "restoring"),
    "power.state.hold": ("удержание", "holding"),
    "power.state.off": ("выключено", "off"),
    "power.src.config": ("конфигурация", "config"),
    "power.src.api": ("вручную / API", "by hand / API"),
    "power.src.schedule": ("расписание", "schedule"),
    "power.src.demand_response": ("запрос на снижение", "demand response"),
    "power.src.price": ("цена", "price"),
    "power.plan": ("План", "Plan"),
    "power.plan.off": ("Управление выключено: план не строится.",
                       "Control is off: no plan is made."),
    "power.plan.none": ("Шагов не требуется.", "No step is needed."),
    "power.plan.dir.shed": ("Снизить примерно на {kw} кВт.", "Shed about {kw} kW."),
    "power.plan.dir.restore": ("Можно вернуть до {kw} кВт.", "Up to {kw} kW may come back."),
    "power.plan.dir.hold": ("Шагов не требуется.", "No step is needed."),
    "power.plan.dry": ("Пробный режим: ничего не выполняется.",
                       "Dry run: nothing is carried out."),
    "power.plan.cycle": ("Цикл {n} ({kw} кВт)", "Cycle {n} ({kw} kW)"),
    "power.to.full": ("полная", "full"),
    "power.to.reduced": ("снижена до {pct} %", "reduced to {pct} %"),
    "power.to.low_power": ("экономный режим", "low power"),
    "power.to.sleep": ("сон", "sleep"),
    "power.last_step": ("Последний шаг в {time}:", "Last step at {time}:"),
    "power.results": ("выполнено: {ok}, с ошибкой: {failed}, исход неизвестен: {unknown}",
                      "done: {ok}, failed: {failed}, outcome unknown: {unknown}"),
    "power.miners": ("Майнеры ввода", "The feed's miners"),
    "power.model": ("Модель", "Model"),
    "power.level": ("Мощность", "Level"),
    "power.kw": ("кВт", "kW"),
    "power.status": ("Управление", "Control"),
    "power.managed": ("(снижен контроллером)", "(curtailed by the controller)"),
    "power.estimate_hint": ("Оценка по таблице моделей", "Estimated from the model table"),
    "power.st.free": ("доступен", "available"),
    "power.st.in_flight": ("меняет режим", "changing"),
    "power.st.dwell": ("выдержка", "dwell"),
    "power.st.excluded": ("исключён", "excluded"),
    "power.st.uncertain": ("исход неизвестен", "outcome unknown"),
    "power.st.unreachable": ("недоступен", "unreachable"),
    "power.st.not_controllable": ("не управляется", "not controllable"),
    "power.chart.title": ("Мощность ввода {feed}", "Power of feed {feed}"),
    "power.chart.measured": ("Измерено, кВт", "Measured, kW"),
    "power.chart.estimated": ("Оценка, кВт", "Estimated, kW"),
    "power.chart.budget": ("Бюджет, кВт", "Budget, kW"),
    "power.done.budget": ("Бюджет ввода {feed} установлен: он действует со следующего цикла.",
                          "The budget of feed {feed} is set; it applies from the next cycle."),
    "power.done.schedule": ("Ввод {feed} снова работает по расписанию.",
                            "Feed {feed} follows its schedule again."),
    "power.done.saved": ("Ввод {feed} сохранён.", "Feed {feed} was saved."),
    "power.done.deleted": ("Ввод {feed} удалён.", "Feed {feed} was deleted."),
    "power.done.mode": ("Режим управления сохранён.", "The control mode was saved."),
    "power.done.exclude": ("Список исключённых майнеров сохранён.",
                           "The list of excluded miners was saved."),
    "power.refused": ("Не принято: {error}", "Refused: {error}"),
    "power.problem.no_reading": ("Счетчик {serial} ещё не прислал показаний. {error}",
                                 "Meter {serial} has sent no reading yet. {error}"),
    "power.problem.stale": ("Нет свежих показаний счетчика {serial} уже {age} с: управление "
                            "удерживает ввод как есть. {error}",
                            "No fresh reading from meter {serial} for {age} s: control holds "
                            "the feed as it is. {error}"),
    "power.note.config": ("budget_kw в конфигурации", "budget_kw in the config"),
    "power.note.set_by": ("задал {who}", "set by {who}"),
    "power.note.from": ("от {who}", "from {who}"),
    "power.note.window": ("окно «{name}»", "window “{name}”"),
    "power.note.windows_idle": ("{n} окно расписания, сейчас не действует|{n} окна "
                                "расписания, сейчас ни одно не действует|{n} окон расписания, "
                                "сейчас ни одно не действует",
                                "{n} schedule window, not now|{n} schedule windows, none now"),
    "power.note.no_windows": ("окон нет", "no windows"),
    "power.note.price": ("цена {price} при цене отсечения {strike}",
                         "price {price} against the strike {strike}"),
    "power.note.no_strike": ("цена отсечения не задана", "no strike price"),
    "power.last_step_text.shed": ("сверх бюджета: измерено {measured} кВт, с учётом идущих "
                                  "изменений {predicted} кВт, бюджет {budget} кВт ({source}); "
                                  "снижение на {delta} кВт",
                                  "over budget: measured {measured} kW, heading for {predicted} "
                                  "kW, budget {budget} kW ({source}); shedding {delta} kW"),
    "power.last_step_text.restore": ("ниже бюджета: измерено {measured} кВт, с учётом идущих "
                                     "изменений {predicted} кВт, бюджет {budget} кВт "
                                     "({source}); возврат {delta} кВт",
                                     "under budget: measured {measured} kW, heading for "
                                     "{predicted} kW, budget {budget} kW ({source}); restoring "
                                     "{delta} kW"),
    "psettings.title": ("Настройки энергии", "Power settings"),
    "psettings.mode": ("Режим управления", "Control mode"),
    "psettings.mode.off": ("только измерять и показывать", "measure and show only"),
    "psettings.mode.dry-run": ("строить и показывать план, ничего не менять",
                               "plan and show every step, change nothing"),
    "psettings.mode.on": ("управлять майнерами", "steer the miners"),
    "psettings.mode.inherit": ("как для всех вводов", "as for every feed"),
    "psettings.feeds": ("Вводы", "Feeds"),
    "psettings.powers": ("Питает", "Powers"),
    "psettings.windows": ("Окон расписания", "Schedule windows"),
    "psettings.edit": ("Изменить", "Edit"),
    "psettings.delete_confirm": ("Удалить ввод {feed}? Снижение на нём прекратится.",
                                 "Delete feed {feed}? Its curtailment stops."),
    "psettings.edit_feed": ("Изменить ввод {feed}", "Edit feed {feed}"),
    "psettings.add_feed": ("Добавить ввод", "Add a feed"),
    "psettings.limit": ("Предел, кВт", "Limit, kW"),
    "psettings.base_load": ("Прочая нагрузка, кВт", "Base load, kW"),
    "psettings.feed_mode": ("Режим", "Mode"),
    "psettings.no_meters": ("Счетчиков нет: добавьте их в «Настройки счетчиков».",
                            "No meters: add them in Meter settings."),
    "psettings.groups": ("Группы", "Groups"),
    "psettings.ranges": ("Диапазоны", "Ranges"),
    "psettings.schedule": ("Расписание", "Schedule"),
    "psettings.schedule_hint": ("По строке на окно: «08:00-11:00 200 mon,tue,wed,thu,fri пик» — "
                                "время (по часовому поясу фермы), бюджет в кВт, при "
                                "необходимости дни и название.",
                                "One window per line: “08:00-11:00 200 mon,tue,wed,thu,fri "
                                "peak” — the time (farm's time zone), the budget in kW, "
                                "optionally the days and a name."),
    "psettings.strike": ("Цена отсечения", "Strike price"),
    "psettings.floor": ("Бюджет при высокой цене, кВт", "Budget above the strike, kW"),
    "psettings.exclude": ("Исключённые майнеры", "Excluded miners"),
    "psettings.exclude_hint": ("MAC-адреса, по одному в строке: контроллер их не трогает.",
                               "MAC addresses, one per line: the controller never touches "
                               "them."),
    # -- security
    "sec.title": ("Безопасность", "Security"),
    "sec.keys": ("Ключи доступа к API", "API keys"),
    "sec.keys_intro": ("Ключ передаётся в заголовке X-Api-Key. Он показывается только один "
                       "раз — сразу скопируйте его.",
                       "Send the key in the X-Api-Key header. It is shown only once: copy it "
                       "now."),
    "sec.key_name": ("Назначение ключа (необязательно)", "What the key is for (optional)"),
    "sec.create": ("Создать ключ доступа", "Create an API key"),
    "sec.new_key": ("Новый ключ доступа", "New API key"),
    "sec.new_key_hint": ("Скопируйте ключ сейчас: после ухода со страницы его не будет видно.",
                         "Copy the key now: it will not be shown again."),
    "sec.copy": ("Копировать", "Copy"),
    "sec.copied": ("Скопировано", "Copied"),
    "sec.key_id": ("Идентификатор", "Id"),
    "sec.created": ("Создан", "Created"),
    "sec.last_used": ("Последнее использование", "Last used"),
    "sec.revoke": ("Отозвать", "Revoke"),
    "sec.revoke_confirm": ("Отозвать ключ {id}? Программы, использующие его, потеряют доступ.",
                           "Revoke key {id}? Programs using it lose access."),
    "sec.revoked": ("Ключ {id} отозван.", "Key {id} was revoked."),
    "sec.no_keys": ("Ключей нет.", "No keys."),
    "sec.password": ("Смена пароля", "Change the password"),
    "sec.current": ("Текущий пароль", "Current password"),
    "sec.new": ("Новый пароль", "New password"),
    "sec.repeat": ("Новый пароль ещё раз", "New password again"),
    "sec.change": ("Сменить пароль", "Change password"),
    "sec.changed": ("Пароль изменён. Другие сеансы завершены.",
                    "The password was changed. Other sessions were ended."),
    "sec.wrong_current": ("Текущий пароль неверен.", "The current password is wrong."),
    "sec.mismatch": ("Пароли не совпадают.", "The passwords do not match."),
    "sec.too_short": ("Не короче {n} символов.", "At least {n} characters."),
    "sec.same": ("Новый пароль совпадает с текущим.", "The new password is the current one."),
    # -- errors
    "err.title": ("Ошибка", "Error"),
    "err.not_found": ("Страница не найдена.", "Page not found."),
    "err.csrf": ("Запрос отклонён: форма устарела или отправлена с другого сайта. Обновите "
                 "страницу и повторите.", "Request refused: the form is stale or was sent from "
                 "another site. Reload the page and try again."),
}


def plural_form(lang: str, n: int) -> int:
    """Which of a counted word's forms ``n`` takes: Russian 0 one (1, 21, 101), 1 few (2–4,
    22–24), 2 many (5–20, 11–14, 0); English 0 one, 1 other."""
    n = abs(int(n))
    if lang == "ru":
        if n % 10 == 1 and n % 100 != 11:
            return 0
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return 1
        return 2
    return 0 if n == 1 else 1


def translator(lang: str) -> Callable[..., str]:
    """``_("key", n=3)``: the text in ``lang``, formatted with the keyword arguments (the form
    of a counted text chosen by ``n``)."""
    index = LANGS.index(lang) if lang in LANGS else 0
    lang = LANGS[index]

    def gettext(key: str, /, **values: Any) -> str:
        pair = TEXT.get(key)
        if pair is None:
            return key
        text = pair[index]
        if "|" in text and "n" in values:
            forms = text.split("|")
            text = forms[min(plural_form(lang, values["n"]), len(forms) - 1)]
        return text.format(**values) if values else text

    return gettext


def lang_of(query: str | None, cookie: str | None) -> str:
    """The language asked for (query first, then the cookie), else the default."""
    for value in (query, cookie):
        if value in LANGS:
            return value
    return DEFAULT
